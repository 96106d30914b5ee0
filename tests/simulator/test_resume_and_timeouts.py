"""Drops, resumes, replaced sockets, client closes, forced disconnects, idle and duration limits."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.simulator.audio import speech
from tests.simulator.conftest import LiveSimulator, eventually
from tests.simulator.wsclient import STOP, Conversation, converse, read_until_closed


async def test_an_abnormal_close_keeps_the_session_resumable_and_the_count_going(
    live: LiveSimulator,
) -> None:
    created = await live.create()
    session = live.state.sessions[created["id"]]
    async with connect(created["url"]) as ws:
        await ws.send(b"\x00" * 3200)
        await ws.recv()
        await ws.close(4000)
    await eventually(lambda: session.socket is None, what="the drop")

    conversation = await converse(created["url"], [b"\x00" * 1600])

    assert conversation.of_type("audio_chunk")[0]["data"]["byte_range"] == [3200, 4800]
    assert session.bytes_received == 4800
    assert session.status == "done"


async def test_a_dropped_connection_without_close_frame_is_resumable(live: LiveSimulator) -> None:
    created = await live.create()
    session = live.state.sessions[created["id"]]
    ws = await connect(created["url"])
    await ws.send(b"\x00" * 320)
    await ws.recv()
    ws.transport.abort()
    await eventually(lambda: session.socket is None, what="the drop")

    conversation = await converse(created["url"], [b"\x00" * 320])

    assert conversation.of_type("audio_chunk")[0]["data"]["byte_range"] == [320, 640]


async def test_a_new_socket_replaces_the_old_one_which_closes_4409(live: LiveSimulator) -> None:
    created = await live.create()
    old = await connect(created["url"])
    await old.send(b"\x00" * 320)
    await old.recv()

    conversation = await converse(created["url"], [b"\x00" * 320])

    await old.wait_closed()
    assert old.close_code == 4409
    assert conversation.close_code == 1000
    assert conversation.of_type("audio_chunk")[0]["data"]["byte_range"] == [320, 640]


async def test_of_two_simultaneous_connections_only_one_stays(live: LiveSimulator) -> None:
    created = await live.create()

    first, second = await asyncio.gather(connect(created["url"]), connect(created["url"]))
    await eventually(
        lambda: first.close_code is not None or second.close_code is not None, what="a close"
    )

    closed, kept = (first, second) if first.close_code is not None else (second, first)
    assert closed.close_code == 4409
    await kept.send(b"\x00" * 320)
    assert json.loads(await kept.recv())["data"]["byte_range"] == [0, 320]
    await kept.close()


async def test_a_client_close_1000_without_stop_finishes_in_the_background(
    live: LiveSimulator,
) -> None:
    created = await live.create()
    session = live.state.sessions[created["id"]]
    async with connect(created["url"]) as ws:
        await ws.send(speech())
        await ws.recv()

    await eventually(lambda: session.status == "done", what="done")
    assert len(session.utterances) == 3
    assert [json.loads(m)["type"] for m in session.messages][-2:] == [
        "post_transcript",
        "post_final_transcript",
    ]
    with pytest.raises(InvalidStatus):
        async with connect(created["url"]):
            pass


async def test_the_forced_disconnect_control_closes_with_the_given_code(
    live: LiveSimulator,
) -> None:
    created = await live.create()
    session = live.state.sessions[created["id"]]
    async with connect(created["url"]) as ws, live.client() as client:
        await ws.send(b"\x00" * 320)
        await ws.recv()
        response = await client.post(
            f"/_simulator/sessions/{created['id']}/disconnect", params={"code": 4500}
        )
        await ws.wait_closed()
        assert response.status_code == 200
        assert ws.close_code == 4500
    await eventually(lambda: session.socket is None, what="the drop")
    assert session.accepts_connection

    async with live.client() as client:
        response = await client.post(f"/_simulator/sessions/{created['id']}/disconnect")
    assert response.status_code == 409


async def test_a_forced_disconnect_acknowledges_every_frame_counted_before_closing(
    live: LiveSimulator,
) -> None:
    created = await live.create()
    session = live.state.sessions[created["id"]]
    conversation = Conversation()
    async with connect(created["url"], max_queue=None) as ws:
        reader = asyncio.create_task(read_until_closed(ws, conversation))
        for _ in range(50):
            await ws.send(b"\x00" * 3200)
        live.state.disconnect(created["id"], 4500)
        await reader

    acked = max(a["data"]["byte_range"][1] for a in conversation.of_type("audio_chunk"))
    assert conversation.close_code == 4500
    assert acked == session.bytes_received


@pytest.mark.simulator_config(idle_timeout_s=0.3)
async def test_a_silent_socket_is_finished_and_closed_1000_after_the_idle_timeout(
    live: LiveSimulator,
) -> None:
    created = await live.create({"messages_config": {"receive_lifecycle_events": True}})
    conversation = Conversation()

    async with asyncio.timeout(5), connect(created["url"]) as ws:
        await ws.send(speech([(0.5, 0.5)]))
        await read_until_closed(ws, conversation)

    assert conversation.close_code == 1000
    assert conversation.types()[-1] == "end_session"
    assert "stop_recording" not in conversation.types()
    assert live.state.sessions[created["id"]].status == "done"


@pytest.mark.simulator_config(idle_timeout_s=0.5)
async def test_empty_chunks_keep_an_idle_socket_alive(live: LiveSimulator) -> None:
    created = await live.create()
    keep_alive = json.dumps({"type": "audio_chunk", "data": {"chunk": ""}})

    async with connect(created["url"]) as ws:
        for _ in range(6):
            await ws.send(keep_alive)
            await asyncio.sleep(0.1)
        await ws.send(STOP)
        conversation = await read_until_closed(ws, Conversation())

    assert "stop_recording" in conversation.types()


@pytest.mark.simulator_config(idle_timeout_s=0.3)
async def test_a_dropped_session_nobody_resumes_is_finished_after_the_idle_timeout(
    live: LiveSimulator,
) -> None:
    created = await live.create()
    session = live.state.sessions[created["id"]]
    async with connect(created["url"]) as ws:
        await ws.send(speech([(0.5, 0.5)]))
        await ws.recv()
        await ws.close(4000)

    await eventually(lambda: session.status == "done", what="done")
    assert len(session.utterances) == 1


@pytest.mark.simulator_config(max_duration_s=0.4)
async def test_a_session_is_stopped_at_its_maximum_duration(live: LiveSimulator) -> None:
    created = await live.create()
    conversation = Conversation()

    async with asyncio.timeout(5), connect(created["url"]) as ws:
        reader = asyncio.create_task(read_until_closed(ws, conversation))
        while not reader.done():
            await ws.send(b"\x00" * 320)
            await asyncio.sleep(0.05)

    assert conversation.close_code == 1000
    assert conversation.types()[-1] == "post_final_transcript"
    assert live.state.sessions[created["id"]].status == "done"


@pytest.mark.simulator_config(session_start_timeout_s=0.2)
async def test_a_url_nobody_connects_to_expires_as_an_error(live: LiveSimulator) -> None:
    created = await live.create()
    session = live.state.sessions[created["id"]]

    await eventually(lambda: session.status == "error", what="expiry")

    assert session.error_code == 408
    assert session.completed_at is not None
    with pytest.raises(InvalidStatus):
        async with connect(created["url"]):
            pass
