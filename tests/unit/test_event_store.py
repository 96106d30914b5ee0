"""The event store's scripts: callbacks, de-duplication, the status machine, job queues."""

import dataclasses
import json
import time
from collections.abc import AsyncIterator

import fakeredis
import pytest
import redis.asyncio as redis

from broker.events.callbacks import Delivery
from broker.events.intake import delivery_digest, event_fields, status_after
from broker.policy.limits import Limits
from broker.settings import Settings
from broker.store.events import (
    EARLY_MAX,
    TAKE_EARLY_CALLBACKS,
    EarlyDelivery,
    EventStore,
    Outcome,
    early_deliveries,
)
from broker.store.keys import callback_binding_key, subject_leases_key
from broker.store.records import SessionStore
from broker.store.scripts import ComposedScript
from broker.store.session_record import SessionRecord
from tests.support.records import session_record

SETTINGS = Settings(events_max=100)
OWNER = "a" * 32
REQUEST = "r" * 32


def record(session_id: str = "s1", status: str = "created") -> SessionRecord:
    return session_record(session_id, OWNER, REQUEST, status=status)


def delivery(event: str, session_id: str = "s1", **payload: object) -> Delivery:
    return Delivery(session_id, event, {"type": event.removeprefix("live."), **payload}, "callback")


@pytest.fixture(params=["fakeredis", "redis-server"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[redis.Redis]:
    connection: redis.Redis
    if request.param == "fakeredis":
        connection = fakeredis.FakeAsyncRedis(decode_responses=True)
    else:
        url = request.getfixturevalue("redis_url")
        connection = redis.Redis.from_url(url, decode_responses=True)
    yield connection
    await connection.aclose()


@pytest.fixture
async def stores(client: redis.Redis) -> tuple[SessionStore, EventStore]:
    sessions, events = SessionStore(client, SETTINGS), EventStore(client, SETTINGS)
    await sessions.save(record())
    return sessions, events


async def take_early(client: redis.Redis, events: EventStore) -> list[EarlyDelivery]:
    """What a create takes in the script that writes its record (`CreateWrites`)."""
    [early] = await ComposedScript(client, [TAKE_EARLY_CALLBACKS])(
        events.take_early_step(OWNER, REQUEST)
    )
    return early_deliveries(early)


async def store(events: EventStore, item: Delivery, request_id: str = REQUEST) -> Outcome:
    """One callback, through a capability for `request_id`."""
    stored = await events.store_callback(OWNER, request_id, item.session_id, event_fields(item))
    return stored.outcome


async def test_an_event_is_stored_once_however_often_it_is_delivered(
    stores: tuple[SessionStore, EventStore],
) -> None:
    _, events = stores
    item = delivery("live.transcript", data={"id": "u1", "is_final": True})
    assert [await store(events, item) for _ in range(3)] == [
        Outcome.STORED,
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
    ]
    entries = await events.read(OWNER, "s1", "0-0", 10)
    assert [(e.event, e.payload["data"]["id"]) for e in entries] == [("live.transcript", "u1")]


async def test_the_status_only_moves_forward(stores: tuple[SessionStore, EventStore]) -> None:
    sessions, events = stores
    statuses = []
    for event in ("live.end_recording", "live.start_recording", "live.transcript"):
        await store(events, delivery(event, data={"n": event}))
        loaded = await sessions.load(OWNER, "s1")
        assert loaded is not None
        statuses.append(loaded.status)
    assert statuses == ["ended", "ended", "ended"]


async def test_a_final_status_is_never_moved_back(stores: tuple[SessionStore, EventStore]) -> None:
    sessions, events = stores
    await sessions.save_final_result(record(), {"status": "done"})
    await store(events, delivery("live.start_recording"))
    loaded = await sessions.load(OWNER, "s1")
    assert loaded is not None and loaded.status == "done"


async def test_a_body_naming_another_session_changes_nothing(
    stores: tuple[SessionStore, EventStore], client: redis.Redis
) -> None:
    sessions, events = stores
    await sessions.save(dataclasses.replace(record("s2"), request_id="q" * 32))
    before = {key: await client.type(key) for key in await client.keys("*")}
    assert await store(events, delivery("live.start_recording", session_id="s2")) == (
        Outcome.MISMATCH
    )
    assert {key: await client.type(key) for key in await client.keys("*")} == before
    assert await events.read(OWNER, "s2", "0-0", 10) == []


async def test_a_deleted_session_is_unknown(stores: tuple[SessionStore, EventStore]) -> None:
    sessions, events = stores
    await sessions.delete(record())
    await events.forget(OWNER, "s1", REQUEST)  # as `Sessions.delete` does
    assert await store(events, delivery("live.start_recording")) == Outcome.UNKNOWN


async def test_a_session_never_recorded_is_unknown_unless_its_create_is_pending(
    client: redis.Redis,
) -> None:
    events = EventStore(client, SETTINGS)
    assert await store(events, delivery("live.start_recording")) == Outcome.UNKNOWN
    assert await client.keys("*") == []
    # A pending lease past its time is a create that will not write its record any more.
    leases = subject_leases_key(OWNER)
    await client.zadd(leases, {REQUEST: int(time.time() * 1000) - 1000})
    assert await store(events, delivery("live.start_recording")) == Outcome.UNKNOWN
    assert await client.keys("*") == [leases]


async def test_callbacks_before_the_record_are_kept_and_taken_by_the_create(
    client: redis.Redis,
) -> None:
    events, limits = EventStore(client, SETTINGS), Limits(client, SETTINGS)
    await limits.admit(OWNER, REQUEST)  # the create's pending lease
    early = delivery("live.start_session")
    assert await store(events, early) == Outcome.EARLY
    [kept] = await take_early(client, events)
    assert (kept.session_id, kept.event) == ("s1", "live.start_session")
    assert json.loads(kept.payload_json) == early.payload
    assert await take_early(client, events) == []
    await limits.admit(OWNER, "e" * 32)
    for number in range(100):  # a create that never completes keeps only a few, briefly
        await store(events, delivery("live.transcript", data={"n": number}), "e" * 32)
    assert await client.llen(f"broker:{{{OWNER}}}:callback-early:{'e' * 32}") == EARLY_MAX
    assert 0 < await client.ttl(f"broker:{{{OWNER}}}:callback-early:{'e' * 32}") <= 120
    assert await events.session_owner("s1") is None  # noted apart, with webhooks only
    await events.note_session_owner("s1", OWNER)
    assert await events.session_owner("s1") == OWNER


async def test_the_user_of_a_session_recorded_before_records_kept_it_is_read_from_its_binding(
    client: redis.Redis,
) -> None:
    events = EventStore(client, SETTINGS)
    assert await events.legacy_subject(OWNER, REQUEST) is None
    await client.hset(
        callback_binding_key(OWNER, REQUEST), mapping={"session_id": "s1", "subject": "alice"}
    )
    assert await events.legacy_subject(OWNER, REQUEST) == "alice"
    await events.forget(OWNER, "s1", REQUEST)
    assert await events.legacy_subject(OWNER, REQUEST) is None


async def test_lifecycle_events_are_one_per_session_whatever_the_channel() -> None:
    by_callback = delivery("live.end_session")
    by_webhook = Delivery("s1", "live.end_session", {"id": "s1"}, "webhook")
    assert delivery_digest(by_callback) == delivery_digest(by_webhook)
    first = delivery("live.transcript", data={"id": "u1"})
    again = Delivery("s1", "live.transcript", dict(reversed(first.payload.items())), "callback")
    assert delivery_digest(first) == delivery_digest(again), "key order does not matter"
    assert delivery_digest(first) != delivery_digest(delivery("live.transcript", data={"id": "u2"}))
    assert status_after("live.post_final_transcript") == "ended"
    assert status_after("live.start_session") is None


async def test_every_key_has_a_ttl_and_the_owners_hash_tag(
    stores: tuple[SessionStore, EventStore], client: redis.Redis
) -> None:
    _, events = stores
    await store(events, delivery("live.start_session"), "e" * 32)  # an early one
    await store(events, delivery("live.end_session"))
    await events.mark("relay", f"{OWNER}:s1")
    await events.advance_relay_cursor(OWNER, "s1", "1-0")
    await events.remember_webhook("msg_1")
    for key in await client.keys("*"):
        assert isinstance(key, str)
        assert await client.ttl(key) > 0, key
        if "{" in key and not key.startswith("broker:{jobs}"):
            assert key.startswith(f"broker:{{{OWNER}}}:"), key


async def test_a_queue_keeps_work_that_arrived_while_it_was_being_done(
    client: redis.Redis,
) -> None:
    events = EventStore(client, SETTINGS)
    await events.mark("q", "m")
    [(member, generation)] = await events.due("q", 10)
    await events.mark("q", "m")  # more work, while the first round runs
    assert not await events.finish("q", member, generation)
    [(_, newer)] = await events.due("q", 10)
    assert await events.finish("q", member, newer)
    assert await events.due("q", 10) == []


async def test_failed_work_waits_with_growing_backoff(client: redis.Redis) -> None:
    events = EventStore(client, SETTINGS)
    await events.mark("q", "m")
    assert await events.retry_later("q", "m", 60, 600) == 1
    assert await events.due("q", 10) == []
    await events.mark("q", "m")
    assert await events.due("q", 10) == [], "new work does not cut a backoff short"
    assert await events.retry_later("q", "m", 60, 600) == 2


async def test_a_lease_is_held_by_one_runner_at_a_time(client: redis.Redis) -> None:
    events = EventStore(client, SETTINGS)
    assert await events.lock("q", "m", "one", 5)
    assert not await events.lock("q", "m", "two", 5)
    assert not await events.renew("q", "m", "two", 5)
    await events.release("q", "m", "two")
    assert not await events.lock("q", "m", "two", 5)
    await events.release("q", "m", "one")
    assert await events.lock("q", "m", "two", 5)
