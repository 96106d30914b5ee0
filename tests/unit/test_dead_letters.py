"""The relay's failure count and dead letters, as the event store keeps them on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis.asyncio as redis

from broker.events.jobs import job_member
from broker.events.relay import DeadLetters
from broker.settings import Settings
from broker.store.events import PARKED_BASE_MS, DeadLetter, EventStore
from broker.store.keys import job_dead_letters_key, job_due_key, relay_failure_key

SETTINGS = Settings()
OWNER = "a" * 32
QUEUE = "relay"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


def letter_for(session_id: str, event_id: str = "1-0") -> DeadLetter:
    return DeadLetter(
        member=job_member(OWNER, session_id),
        session_id=session_id,
        event_id=event_id,
        event_type="live.transcript",
        attempts=3,
        error="http_503",
        first_failed_ms=1_700_000_000_000,
    )


async def test_failures_are_counted_per_event_and_start_again_for_the_next(
    client: redis.Redis,
) -> None:
    events = EventStore(client, SETTINGS)
    first = await events.record_relay_failure(OWNER, "s1", "1-0", "ConnectError")
    second = await events.record_relay_failure(OWNER, "s1", "1-0", "http_503")
    assert (first.attempts, second.attempts) == (1, 2)
    assert second.first_failed_ms == first.first_failed_ms
    assert second.age_ms >= 0
    # The cursor moved on: the next event's failures are its own.
    assert (await events.record_relay_failure(OWNER, "s1", "2-0", "http_503")).attempts == 1
    assert await client.hget(relay_failure_key(OWNER, "s1"), "error") == "http_503"
    assert await client.ttl(relay_failure_key(OWNER, "s1")) > 0


async def test_a_dead_letter_parks_its_member_until_it_is_replayed(client: redis.Redis) -> None:
    events = EventStore(client, SETTINGS)
    member = job_member(OWNER, "s1")
    await events.mark(QUEUE, member)
    letter_id = await events.dead_letter(QUEUE, letter_for("s1"))
    assert await events.due(QUEUE, 10) == []
    await events.mark(QUEUE, member)  # a later event waits behind the parked one
    assert await events.due(QUEUE, 10) == []
    assert (await client.zscore(job_due_key(QUEUE), member) or 0) >= PARKED_BASE_MS

    [listed] = await events.dead_letters(QUEUE, 10)
    assert listed == replace(letter_for("s1"), id=letter_id)
    assert listed.dead_lettered_ms > 0
    assert await events.count_dead_letters(QUEUE) == 1

    assert await events.replay_dead_letter(QUEUE, letter_id) == member
    assert [due for due, _ in await events.due(QUEUE, 10)] == [member]
    assert await events.dead_letters(QUEUE, 10) == []
    assert await events.replay_dead_letter(QUEUE, letter_id) is None


async def test_replaying_starts_the_attempts_again(client: redis.Redis) -> None:
    events = EventStore(client, SETTINGS)
    dead = DeadLetters(events)
    await events.record_relay_failure(OWNER, "s1", "1-0", "http_503")
    letter_id = await dead.add(letter_for("s1"))
    await events.record_relay_failure(OWNER, "s1", "1-0", "http_503")
    assert await dead.replay(letter_id) == "s1"
    assert await client.exists(relay_failure_key(OWNER, "s1")) == 0
    assert await dead.count() == 0


async def test_letters_and_parked_members_past_the_events_ttl_are_forgotten(
    client: redis.Redis,
) -> None:
    short = EventStore(client, Settings(result_ttl_s=1, session_ttl_s=1))
    await short.mark(QUEUE, job_member(OWNER, "old"))
    await short.dead_letter(QUEUE, letter_for("old"))
    await asyncio.sleep(1.1)
    await short.mark(QUEUE, job_member(OWNER, "new"))
    await short.dead_letter(QUEUE, letter_for("new"))
    assert [letter.session_id for letter in await short.dead_letters(QUEUE, 10)] == ["new"]
    assert await client.zscore(job_due_key(QUEUE), job_member(OWNER, "old")) is None
    assert 0 < await client.pttl(job_dead_letters_key(QUEUE)) <= 1000
    assert await client.ttl(job_due_key(QUEUE)) > 0
