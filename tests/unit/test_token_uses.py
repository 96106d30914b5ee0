"""A bound token's uses and the daily budget, in the subject's admission script, on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from broker.errors import Forbidden, TooManyRequests
from broker.policy.limits import Limits
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.keys import subject_leases_key, subject_usage_key, token_uses_key

SETTINGS = Settings(max_live_per_subject=10, creates_per_minute=100, account_max_live=100)
TOKEN = "t" * 48


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connection = open_redis(replace(SETTINGS, redis_url=redis_url))
    yield connection
    await connection.aclose()


async def test_a_retried_admission_takes_one_use_not_two(client: aioredis.Redis) -> None:
    limits = Limits(client, SETTINGS)
    await limits.admit("alice", "r1", token_id=TOKEN, max_sessions=2)
    await limits.admit("alice", "r1", token_id=TOKEN, max_sessions=2)  # the same request again
    assert await client.smembers(token_uses_key("alice", TOKEN)) == {"r1"}
    await limits.admit("alice", "r2", token_id=TOKEN, max_sessions=2)
    with pytest.raises(Forbidden) as refused:
        await limits.admit("alice", "r3", token_id=TOKEN, max_sessions=2)
    assert refused.value.reason == "binding_sessions"
    # Refused: nothing else was taken either.
    assert await client.zscore(subject_leases_key("alice"), "r3") is None
    assert limits.refusals["binding_sessions"] == 1


async def test_a_released_create_gives_its_use_back(client: aioredis.Redis) -> None:
    limits = Limits(client, SETTINGS)
    await limits.admit("alice", "r1", token_id=TOKEN, max_sessions=1)
    await limits.release_lease("alice", "r1")  # a session's end: the use stays spent
    with pytest.raises(Forbidden):
        await limits.admit("alice", "r2", token_id=TOKEN, max_sessions=1)
    await limits.release_lease("alice", "r1", token_id=TOKEN)
    await limits.admit("alice", "r2", token_id=TOKEN, max_sessions=1)


async def test_an_account_refusal_gives_the_use_back(client: aioredis.Redis) -> None:
    limits = Limits(client, replace(SETTINGS, account_max_live=1))
    await limits.admit("bob", "r0")
    with pytest.raises(TooManyRequests):
        await limits.admit("alice", "r1", token_id=TOKEN, max_sessions=1)
    assert await client.exists(token_uses_key("alice", TOKEN)) == 0


async def test_unbound_admissions_touch_no_uses(client: aioredis.Redis) -> None:
    await Limits(client, SETTINGS).admit("alice", "r1", token_id=TOKEN)
    assert await client.exists(token_uses_key("alice", TOKEN)) == 0
    with pytest.raises(ValueError, match="needs its id"):
        await Limits(client, SETTINGS).admit("alice", "r2", max_sessions=1)


async def test_the_budget_is_read_from_todays_usage(client: aioredis.Redis) -> None:
    limits = Limits(client, replace(SETTINGS, budget_seconds_per_day=100))
    today = subject_usage_key("alice", datetime.now(UTC).date().isoformat())
    await client.hset(today, "seconds", "99.9")
    await limits.admit("alice", "r1")
    await client.hset(today, "seconds", "100")
    with pytest.raises(TooManyRequests) as refused:
        await limits.admit("alice", "r2")
    assert refused.value.reason == "budget_seconds_per_day"
    assert refused.value.retry_after_s is not None
    assert 1 <= refused.value.retry_after_s <= 86400
    # No budget configured: the same usage refuses nothing.
    await Limits(client, SETTINGS).admit("alice", "r3")
