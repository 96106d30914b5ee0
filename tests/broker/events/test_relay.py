"""The relay: every stored event reaches the app's backend, signed, in order, at least once."""

from typing import Any

import httpx
import pytest

from broker.settings import Settings
from tests.broker.conftest import Simulator
from tests.broker.events.conftest import (
    Headers,
    InProcess,
    Receiver,
    callback_body,
    capability_path,
    in_process,
    queued,
    relay_settings,
    wait_for,
)


@pytest.fixture
def redis_topology(redis_url: str) -> tuple[str, bool]:
    """These tests read Redis directly, on the single server (the Cluster runs the rest)."""
    return redis_url, False


UTTERANCES = [f"u{number}" for number in range(6)]


async def post_callbacks(
    broker: InProcess, simulator: Simulator, session_id: str, utterances: list[str]
) -> None:
    path = capability_path(simulator, session_id)
    for utterance in utterances:
        body = callback_body(session_id, "live.transcript", id=utterance, is_final=True)
        assert (await broker.client.post(path, json=body)).status_code == 204


async def stream_ids(broker: InProcess, session_id: str, headers: dict[str, str]) -> list[str]:
    response = await broker.client.get(f"/v1/sessions/{session_id}/events", headers=headers)
    return [item["id"] for item in response.json()["items"]]


def utterance_ids(bodies: list[dict[str, Any]]) -> list[str]:
    return [body["payload"]["data"]["id"] for body in bodies]


async def test_a_backend_that_fails_twice_then_recovers_gets_every_event_once_in_order(
    settings: Settings, mint: Headers, simulator: Simulator, receiver: Receiver, redis_url: str
) -> None:
    receiver.failures_left = 2
    async with in_process(relay_settings(settings, receiver)) as broker:
        alice = mint("alice")
        created = await broker.client.post("/v1/sessions", headers=alice, json={})
        session_id = created.json()["id"]
        await post_callbacks(broker, simulator, session_id, UTTERANCES)

        async def all_delivered() -> bool:
            return len(receiver.ids()) == len(UTTERANCES)

        await wait_for(all_delivered)
        await wait_for(lambda: _empty(redis_url))
        stored = await stream_ids(broker, session_id, alice)

    assert receiver.refused == 2 and receiver.unverified == 0
    bodies = receiver.bodies()
    assert utterance_ids(bodies) == UTTERANCES
    assert [body["event_id"] for body in bodies] == stored
    assert receiver.ids() == [f"{session_id}_{event_id}" for event_id in stored]
    assert {body["subject"] for body in bodies} == {"alice"}
    assert {body["session_id"] for body in bodies} == {session_id}
    assert {body["type"] for body in bodies} == {"live.transcript"}


async def _empty(redis_url: str) -> bool:
    return queued(redis_url, "relay") == 0


async def test_a_broker_restart_in_the_middle_loses_nothing(
    settings: Settings, mint: Headers, simulator: Simulator, receiver: Receiver, redis_url: str
) -> None:
    relayed = relay_settings(settings, receiver)
    alice = mint("alice")
    receiver.failures_left = 10**6  # the backend is down while the first instance runs
    async with in_process(relayed) as first:
        session_id = (await first.client.post("/v1/sessions", headers=alice, json={})).json()["id"]
        await post_callbacks(first, simulator, session_id, UTTERANCES[:3])

        async def attempted() -> bool:
            return receiver.refused >= 2

        await wait_for(attempted)
    assert receiver.ids() == []
    assert queued(redis_url, "relay") == 1, "the work outlives the instance, in Redis"

    with receiver.lock:
        receiver.failures_left = 0  # the backend is back; a new instance starts
    async with in_process(relayed) as second:
        await post_callbacks(second, simulator, session_id, UTTERANCES[3:])

        async def all_delivered() -> bool:
            return len(receiver.ids()) == len(UTTERANCES)

        await wait_for(all_delivered)
        await wait_for(lambda: _empty(redis_url))
        stored = await stream_ids(second, session_id, alice)

    bodies = receiver.bodies()
    assert utterance_ids(bodies) == UTTERANCES
    assert [body["event_id"] for body in bodies] == stored
    assert receiver.unverified == 0


async def test_two_instances_share_the_relay_without_sending_anything_twice(
    settings: Settings, mint: Headers, simulator: Simulator, receiver: Receiver, redis_url: str
) -> None:
    relayed = relay_settings(settings, receiver)
    alice = mint("alice")
    async with in_process(relayed) as first, in_process(relayed) as second:
        session_id = (await first.client.post("/v1/sessions", headers=alice, json={})).json()["id"]
        for number, utterance in enumerate(UTTERANCES):
            await post_callbacks(
                first if number % 2 else second, simulator, session_id, [utterance]
            )

        async def all_delivered() -> bool:
            return len(receiver.ids()) == len(UTTERANCES)

        await wait_for(all_delivered)
        await wait_for(lambda: _empty(redis_url))
    assert utterance_ids(receiver.bodies()) == UTTERANCES
    assert len(set(receiver.ids())) == len(UTTERANCES)


async def test_without_a_relay_url_nothing_is_queued(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, redis_url: str
) -> None:
    alice = mint("alice")
    session_id = (await broker.post("/v1/sessions", headers=alice, json={})).json()["id"]
    body = callback_body(session_id, "live.transcript", id="u0", is_final=True)
    assert (await broker.post(capability_path(simulator, session_id), json=body)).status_code == 204
    assert queued(redis_url, "relay") == 0
