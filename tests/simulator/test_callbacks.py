"""Session callbacks: callback_config with its own defaults, order, retries, never slowing audio."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.client import connect

from broker.simulator.config import SimulatorConfig
from broker.simulator.delivery import Deliverer
from tests.simulator.audio import chunks, speech
from tests.simulator.conftest import LiveSimulator, Receiver, eventually, wait_until
from tests.simulator.wsclient import converse
from tests.support.servers import serve_in_thread

DEFAULT_EVENTS = [
    "live.start_session",
    "live.start_recording",
    "live.transcript",
    "live.transcript",
    "live.transcript",
    "live.end_recording",
    "live.post_transcript",
    "live.post_final_transcript",
    "live.end_session",
]


def _with_callback(receiver: Receiver, **config: Any) -> dict[str, Any]:
    return {"callback": True, "callback_config": {"url": f"{receiver.url}/hooks/s1", **config}}


async def test_callbacks_follow_the_callback_defaults(
    live: LiveSimulator, receiver: Receiver
) -> None:
    created = await live.create(_with_callback(receiver))

    conversation = await converse(created["url"], chunks(speech(), 3200))

    await eventually(lambda: len(receiver.accepted) == len(DEFAULT_EVENTS), what="callbacks")
    assert receiver.events() == DEFAULT_EVENTS
    first = receiver.accepted[0]
    assert first.path == "/hooks/s1"
    assert first.headers["content-type"] == "application/json"
    assert not {h for h in first.headers if "signature" in h}
    assert first.json["id"] == created["id"]
    assert first.json["payload"]["type"] == "start_session"
    assert first.json["payload"]["session_id"] == created["id"]
    ws_finals = [m for m in conversation.of_type("transcript")]
    callback_finals = [
        r.json["payload"] for r in receiver.accepted if r.json["event"] == "live.transcript"
    ]
    assert callback_finals == ws_finals


async def test_callback_flags_are_independent_of_the_sockets(
    live: LiveSimulator, receiver: Receiver
) -> None:
    created = await live.create(
        {
            "messages_config": {"receive_speech_events": False},
            **_with_callback(
                receiver,
                receive_speech_events=True,
                receive_acknowledgments=True,
                receive_partial_transcripts=True,
                receive_lifecycle_events=False,
                receive_post_processing_events=False,
            ),
        }
    )

    conversation = await converse(created["url"], chunks(speech(), 3200))

    await eventually(lambda: "live.stop_recording" in receiver.events(), what="callbacks")
    events = set(receiver.events())
    assert events == {
        "live.audio_chunk",
        "live.speech_start",
        "live.speech_end",
        "live.transcript",
        "live.stop_recording",
    }
    assert "speech_start" not in conversation.types()
    partials = [
        r
        for r in receiver.accepted
        if r.json["event"] == "live.transcript" and not r.json["payload"]["data"]["is_final"]
    ]
    assert partials


async def test_no_callback_is_sent_unless_callback_is_true(
    live: LiveSimulator, receiver: Receiver
) -> None:
    created = await live.create({"callback_config": {"url": f"{receiver.url}/hooks"}})
    await converse(created["url"], chunks(speech(), 3200))

    sentinel = await live.create(_with_callback(receiver))

    await eventually(lambda: len(receiver.accepted) == 1, what="the sentinel's start_session")
    assert [r.json["id"] for r in receiver.attempts] == [sentinel["id"]]


async def test_a_receiver_failing_twice_still_gets_each_event_once_in_order(
    live: LiveSimulator, receiver: Receiver
) -> None:
    receiver.failures_left = 2
    created = await live.create(_with_callback(receiver))

    await converse(created["url"], chunks(speech(), 3200))

    await eventually(lambda: len(receiver.accepted) == len(DEFAULT_EVENTS), what="callbacks")
    assert receiver.events() == DEFAULT_EVENTS
    assert len(receiver.attempts) == len(DEFAULT_EVENTS) + 2
    assert [a.body for a in receiver.attempts[:3]] == [receiver.accepted[0].body] * 3
    records = [r for r in live.state.deliveries if r.kind == "callback"]
    assert records[0].attempts == 3 and all(r.delivered for r in records)


@pytest.mark.simulator_config(callback_attempts=3, callback_backoff_s=0.01)
async def test_a_receiver_that_keeps_failing_is_given_up_after_the_configured_attempts(
    live: LiveSimulator, receiver: Receiver
) -> None:
    receiver.failures_left = 1000
    created = await live.create(_with_callback(receiver, receive_lifecycle_events=False))

    await converse(created["url"], [b"\x00" * 320])

    await eventually(lambda: len(live.state.deliveries) == 2, what="deliveries to settle")
    assert [(r.event, r.attempts, r.delivered, r.status_code) for r in live.state.deliveries] == [
        ("live.post_transcript", 3, False, 500),
        ("live.post_final_transcript", 3, False, 500),
    ]


async def test_an_unreachable_receiver_is_retried_then_given_up(live: LiveSimulator) -> None:
    body = {"callback": True, "callback_config": {"url": "http://127.0.0.1:9/none"}}
    await live.create(body)

    await eventually(lambda: len(live.state.deliveries) == 1, what="delivery to settle")
    [record] = live.state.deliveries
    assert (record.event, record.delivered, record.attempts, record.status_code) == (
        "live.start_session",
        False,
        4,
        None,
    )


async def test_a_slow_receiver_never_slows_the_socket(
    live: LiveSimulator, receiver: Receiver
) -> None:
    receiver.delay_s = 1.0
    created = await live.create(_with_callback(receiver, receive_acknowledgments=True))

    started = time.monotonic()
    conversation = await converse(created["url"], chunks(speech(), 3200))
    elapsed = time.monotonic() - started

    assert conversation.close_code == 1000
    assert elapsed < 2.0
    assert len(receiver.accepted) <= 2


async def test_callbacks_still_come_after_the_client_closes_1000(
    live: LiveSimulator, receiver: Receiver
) -> None:
    created = await live.create(_with_callback(receiver))
    async with connect(created["url"]) as ws:
        await ws.send(speech())
        await ws.recv()

    await eventually(lambda: "live.end_session" in receiver.events(), what="end_session callback")
    assert receiver.events() == DEFAULT_EVENTS


def test_callbacks_reach_the_receiver_from_a_sync_caller(
    live: LiveSimulator, receiver: Receiver
) -> None:
    asyncio.run(live.create(_with_callback(receiver)))

    wait_until(lambda: receiver.events() == ["live.start_session"], what="start_session")


async def test_deliveries_for_many_sessions_are_bounded_in_flight_and_all_arrive() -> None:
    in_flight, most = 0, 0
    count_lock = threading.Lock()

    async def slow(request: Request) -> Response:
        nonlocal in_flight, most
        with count_lock:
            in_flight += 1
            most = max(most, in_flight)
        await asyncio.sleep(0.05)
        with count_lock:
            in_flight -= 1
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hooks", slow, methods=["POST"])])
    config = SimulatorConfig(api_key="k", callback_concurrency=4, callback_attempts=1)
    deliverer = Deliverer(config)
    with serve_in_thread(app) as base_url:
        await deliverer.open()
        try:
            for n in range(40):  # forty sessions, each its own ordered lane
                deliverer.callback(f"s{n}", f"{base_url}/hooks", {"type": "start_session"})
            await eventually(lambda: len(deliverer.records) == 40, timeout_s=10, what="deliveries")
        finally:
            await deliverer.close()
    assert all(record.delivered for record in deliverer.records)
    assert most == 4  # in parallel, but never more than the bound
