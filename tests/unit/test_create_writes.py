"""What a create writes once Gladia answers: one script on the owner's slot, the rest beside it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from broker.events.callbacks import Delivery
from broker.events.intake import event_fields
from broker.policy.limits import Limits
from broker.sessions.create_writes import CreateWrites
from broker.settings import Settings
from broker.store.events import EventStore, Outcome
from broker.store.keys import (
    ACCOUNT_LEASES_KEY,
    callback_binding_key,
    session_keys,
    session_owner_key,
    subject_creates_key,
    subject_leases_key,
)
from broker.store.records import SessionStore
from broker.store.session_record import SessionRecord
from tests.support.records import session_record

SETTINGS = Settings(max_live_per_subject=1, account_max_live=50, creates_per_minute=50)
OWNER = "b" * 32
REQUEST = "q" * 32


def record(session_id: str = "s1") -> SessionRecord:
    return session_record(session_id, OWNER, REQUEST)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


def writes(
    client: redis.Redis,
    *,
    early: bool = True,
    relay: bool = False,
    owner: bool = False,
    legacy: bool = False,
    cluster: bool = False,
) -> CreateWrites:
    settings = dataclasses.replace(SETTINGS, legacy_records=legacy, redis_cluster=cluster)
    return CreateWrites(
        client,
        SessionStore(client, settings),
        Limits(client, settings),
        EventStore(client, settings),
        take_early=early,
        keep_subject=relay,
        note_session_owner=owner,
        legacy_binding=legacy,
    )


async def test_everything_a_create_needs_is_written_and_early_callbacks_handed_back(
    client: redis.Redis,
) -> None:
    await Limits(client, SETTINGS).admit(OWNER, REQUEST)
    early = Delivery("s1", "live.start_session", {"type": "start_session"}, "callback")
    events = EventStore(client, SETTINGS)
    stored = await events.store_callback(OWNER, REQUEST, "s1", event_fields(early))
    assert stored.outcome is Outcome.EARLY

    written = await writes(client, relay=True, owner=True).write(record(), "alice")

    assert (written.record, written.account_lease, written.session_owner) == (None, None, None)
    assert [(kept.session_id, kept.event) for kept in written.early] == [
        ("s1", "live.start_session")
    ]
    keys = session_keys(OWNER, "s1")
    loaded = await SessionStore(client, SETTINGS).load(OWNER, "s1")
    assert loaded is not None and (loaded.request_id, loaded.subject) == (REQUEST, "alice")
    assert await client.zrange(keys.index, 0, -1) == ["s1"]
    for leases in (subject_leases_key(OWNER), ACCOUNT_LEASES_KEY):
        # The pending lease (the request id) became the session's own.
        assert await client.zrange(leases, 0, -1) == ["s1"]
    assert await client.exists(callback_binding_key(OWNER, REQUEST)) == 0
    assert await client.get(session_owner_key("s1")) == OWNER
    for key in await client.keys("*"):
        assert await client.ttl(key) > 0, key


async def test_without_callbacks_or_webhooks_only_the_record_index_and_leases_are_kept(
    client: redis.Redis,
) -> None:
    await Limits(client, SETTINGS).admit(OWNER, REQUEST)
    written = await writes(client, early=False, owner=False).write(record(), "alice")
    assert written.record is None and written.early == []
    keys = session_keys(OWNER, "s1")
    assert sorted(await client.keys("*")) == sorted(
        [
            keys.record,
            keys.index,
            subject_leases_key(OWNER),
            ACCOUNT_LEASES_KEY,
            subject_creates_key(OWNER),
        ]
    )


async def test_the_users_id_is_kept_only_for_the_relay(client: redis.Redis) -> None:
    await writes(client, relay=False).write(record(), "alice")
    loaded = await SessionStore(client, SETTINGS).load(OWNER, "s1")
    assert loaded == record()
    assert "alice" not in (await client.get(session_keys(OWNER, "s1").record) or "")


@pytest.mark.parametrize("cluster", [False, True], ids=["in the script", "beside it"])
async def test_a_failed_account_lease_leaves_the_session_recorded(
    client: redis.Redis, cluster: bool
) -> None:
    await client.set(ACCOUNT_LEASES_KEY, "not a sorted set")  # every write to it fails
    written = await writes(client, cluster=cluster).write(record(), "alice")
    assert isinstance(written.account_lease, ResponseError)
    assert "WRONGTYPE" in str(written.account_lease)
    assert written.record is None
    assert await client.exists(session_keys(OWNER, "s1").record) == 1


async def test_a_failed_owner_script_is_reported_as_the_record_failing(
    client: redis.Redis,
) -> None:
    limits = Limits(client, SETTINGS)
    await limits.admit(OWNER, REQUEST)
    await client.set(session_keys(OWNER, "s1").index, "not a sorted set")  # a step fails
    written = await writes(client).write(record(), "alice")
    assert isinstance(written.record, ResponseError)
    assert written.early == []
    # The client's retry is not refused for a lease this create still held.
    assert await client.zcard(subject_leases_key(OWNER)) == 0
    assert await client.zcard(ACCOUNT_LEASES_KEY) == 0
    await limits.admit(OWNER, "q2" * 16)


async def test_legacy_records_are_written_as_the_previous_version_reads_them(
    client: redis.Redis,
) -> None:
    await Limits(client, SETTINGS).admit(OWNER, REQUEST)
    written = await writes(client, relay=True, legacy=True).write(record(), "alice")
    assert written.record is None and written.early == []
    stored = json.loads(await client.get(session_keys(OWNER, "s1").record) or "")
    previous_fields = {"status", "url", "created_at", "expires_at", "messages_config"}
    assert previous_fields | {"request_id"} <= stored.keys()
    assert await client.hgetall(callback_binding_key(OWNER, REQUEST)) == {
        "session_id": "s1",
        "subject": "alice",
    }
    assert await client.ttl(callback_binding_key(OWNER, REQUEST)) > 0
    loaded = await SessionStore(client, SETTINGS).load(OWNER, "s1")
    assert loaded is not None and loaded.subject == "alice"
