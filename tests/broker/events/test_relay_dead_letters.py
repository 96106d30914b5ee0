"""The relay gives up: a delivery past its attempts or age becomes a dead letter an operator lists
and replays (`broker relay dead-letters`, `broker relay replay ID`), the session's order kept."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace

from broker.events.intake import RELAY_QUEUE
from broker.events.relay import DeadLetters
from broker.settings import Settings
from broker.store.events import DeadLetter
from tests.broker.conftest import CANARIES, Simulator
from tests.broker.events.conftest import (
    RELAY_SECRET,
    Headers,
    InProcess,
    Receiver,
    callback_body,
    capability_path,
    in_process,
    relay_settings,
    wait_for,
)
from tests.broker.test_metrics import parse, value

CLEAN_ENV = {
    key: value
    for key, value in os.environ.items()
    if not key.startswith(("GLADIA_", "BROKER_", "REDIS_"))
}


async def broker_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    """`broker …` run as an operator runs it, against the test's Redis."""
    assert settings.redis_url is not None
    env = {**CLEAN_ENV, "REDIS_URL": settings.redis_url}
    if settings.redis_cluster:
        env["REDIS_CLUSTER"] = "true"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def post_transcripts(
    broker: InProcess, simulator: Simulator, session_id: str, utterances: list[str]
) -> None:
    path = capability_path(simulator, session_id)
    for utterance in utterances:
        body = callback_body(session_id, "live.transcript", id=utterance, is_final=True)
        assert (await broker.client.post(path, json=body)).status_code == 204


async def one_dead_letter(broker: InProcess) -> DeadLetter:
    dead_letters = DeadLetters(broker.resources.events)

    async def listed() -> bool:
        return await dead_letters.count() == 1

    await wait_for(listed)
    [letter] = await dead_letters.oldest(10)
    return letter


async def metrics_of(broker: InProcess) -> dict[str, float]:
    samples = parse((await broker.client.get("/metrics")).text)
    return {
        "dead_lettered": value(samples, "broker_relay_dead_letters_total"),
        "waiting": value(samples, "broker_relay_dead_letters_waiting"),
        "refused": value(samples, "broker_relay_delivery_failures_total", error="http_503"),
    }


async def test_a_backend_that_always_fails_ends_in_the_dead_letters_and_replay_delivers(
    settings: Settings, mint: Headers, simulator: Simulator, receiver: Receiver
) -> None:
    receiver.failures_left = 10**6  # the backend is down
    relayed = replace(relay_settings(settings, receiver), relay_max_attempts=3)
    alice = mint("alice")
    async with in_process(relayed) as broker:
        created = await broker.client.post("/v1/sessions", headers=alice, json={})
        session_id = created.json()["id"]
        await post_transcripts(broker, simulator, session_id, ["u0", "u1", "u2"])
        letter = await one_dead_letter(broker)
        # Parked: later events wait behind it, and nothing is tried again meanwhile.
        await post_transcripts(broker, simulator, session_id, ["u3"])
        assert await broker.resources.events.due(RELAY_QUEUE, 10) == []
        assert receiver.refused == 3
        before_replay = await metrics_of(broker)

        status, listing, errors = await broker_cli(relayed, "relay", "dead-letters")
        assert status == 0, errors
        with receiver.lock:
            receiver.failures_left = 0  # the backend is back
        status, replayed, errors = await broker_cli(relayed, "relay", "replay", letter.id)
        assert status == 0, errors

        async def all_delivered() -> bool:
            return len(receiver.ids()) == 4

        await wait_for(all_delivered)
        after_replay = await metrics_of(broker)
        stream = await broker.client.get(f"/v1/sessions/{session_id}/events", headers=alice)
        stored = [item["id"] for item in stream.json()["items"]]

    assert (letter.session_id, letter.attempts, letter.error) == (session_id, 3, "http_503")
    assert (letter.event_id, letter.event_type) == (stored[0], "live.transcript")
    header, row = listing.splitlines()
    assert header.split("\t") == [
        "id", "session", "event", "type", "attempts", "last_error",
        "first_failed_at", "dead_lettered_at",
    ]  # fmt: skip
    assert row.split("\t")[:6] == [letter.id, session_id, stored[0], "live.transcript", "3",
                                   "http_503"]  # fmt: skip
    for secret in (*CANARIES, RELAY_SECRET, receiver.base_url, "u0", "alice", "/v1/callbacks/"):
        assert secret not in listing
    assert session_id in replayed
    # In order, each once, from where the session stopped.
    bodies = receiver.bodies()
    assert [body["payload"]["data"]["id"] for body in bodies] == ["u0", "u1", "u2", "u3"]
    assert [body["event_id"] for body in bodies] == stored
    assert before_replay == {"dead_lettered": 1, "waiting": 1, "refused": 3}
    assert after_replay == {"dead_lettered": 1, "waiting": 0, "refused": 3}


async def test_a_delivery_failing_past_its_age_is_dead_lettered_before_its_attempts_run_out(
    settings: Settings, mint: Headers, simulator: Simulator, receiver: Receiver
) -> None:
    receiver.failures_left = 10**6
    relayed = replace(
        relay_settings(settings, receiver), relay_max_attempts=10**6, relay_max_age_s=0.3
    )
    async with in_process(relayed) as broker:
        created = await broker.client.post("/v1/sessions", headers=mint("alice"), json={})
        session_id = created.json()["id"]
        await post_transcripts(broker, simulator, session_id, ["u0"])
        letter = await one_dead_letter(broker)
    assert letter.session_id == session_id
    assert 2 <= letter.attempts < 100


async def test_replaying_an_unknown_letter_says_so(settings: Settings) -> None:
    status, _, errors = await broker_cli(settings, "relay", "replay", "1-0")
    assert status == 1
    assert "no dead letter 1-0" in errors
    status, _, errors = await broker_cli(settings, "relay", "replay", "not-an-id")
    assert status == 2
    status, listing, _ = await broker_cli(settings, "relay", "dead-letters")
    assert (status, listing.count("\n")) == (0, 1)  # the header alone
