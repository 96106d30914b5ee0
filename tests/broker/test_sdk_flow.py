"""The whole journey: the broker creates, the SDK streams, the broker returns the result."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.broker.conftest import BrokerFactory, Simulator
from tests.simulator.audio import speech
from tests.support.sdk import stream_to_created

Headers = Callable[[str], dict[str, str]]


async def poll_result(
    broker: httpx.AsyncClient, session_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        result = (await broker.get(f"/v1/sessions/{session_id}/result", headers=headers)).json()
        if result["status"] == "done" or asyncio.get_running_loop().time() > deadline:
            return dict(result)
        await asyncio.sleep(0.05)


async def test_create_reconnect_stream_with_the_sdk_fetch_the_result_and_delete(
    broker: httpx.AsyncClient, broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    body = {"sample_rate": 16000, "messages_config": {"receive_partial_transcripts": True}}
    created = (await broker.post("/v1/sessions", headers=alice, json=body)).json()

    async with broker_factory() as other_instance:
        again = (await other_instance.get(f"/v1/sessions/{created['id']}", headers=alice)).json()
    assert again["url"] == created["url"]

    audio = speech()
    messages = await stream_to_created(again, audio)
    finals = [m for m in messages if m.type == "transcript" and m.data.is_final]
    assert finals, "the SDK received final transcripts"
    assert simulator.state.sessions[created["id"]].bytes_received == len(audio)

    result = await poll_result(broker, created["id"], alice)
    assert result["status"] == "done"
    utterances = result["result"]["transcription"]["utterances"]
    assert [u["text"] for u in utterances] == [m.data.utterance.text for m in finals]
    assert "custom_metadata" not in result

    listed = (await broker.get("/v1/sessions", headers=alice)).json()["items"]
    assert [(item["id"], item["status"]) for item in listed] == [(created["id"], "done")]
    done = (await broker.get(f"/v1/sessions/{created['id']}", headers=alice)).json()
    assert "url" not in done, "a finished session's URL is no longer handed out"

    gets_before = len(simulator.calls("GET", f"/v2/live/{created['id']}"))
    cached = (await broker.get(f"/v1/sessions/{created['id']}/result", headers=alice)).json()
    assert cached == result
    assert len(simulator.calls("GET", f"/v2/live/{created['id']}")) == gets_before

    deleted = await broker.delete(f"/v1/sessions/{created['id']}", headers=alice)
    assert deleted.status_code == 204
    assert created["id"] not in simulator.state.sessions
    assert (await broker.get(f"/v1/sessions/{created['id']}", headers=alice)).status_code == 404
