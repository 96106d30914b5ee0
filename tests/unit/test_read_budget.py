"""`Limits.spend_reads`: the per-user read budget's sliding window, on a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from broker.errors import TooManyRequests
from broker.policy.limits import Limits
from broker.settings import Settings
from broker.store.keys import subject_creates_key, subject_reads_key

SETTINGS = Settings(reads_per_minute=5)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


async def refused(limits: Limits, subject: str, units: int = 1) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as raised:
        await limits.spend_reads(subject, units)
    return raised.value


async def test_units_are_spent_until_the_budget_then_a_429_names_it(
    client: aioredis.Redis,
) -> None:
    limits = Limits(client, SETTINGS)
    await limits.spend_reads("alice", 3)
    await limits.spend_reads("alice")
    refusal = await refused(limits, "alice", 2)
    assert refusal.reason == "reads_per_minute"
    assert refusal.detail is not None and refusal.detail.startswith("Too many reads")
    assert 59 <= int(refusal.headers()["Retry-After"]) <= 60
    await limits.spend_reads("alice")  # a refusal spends nothing: the last unit still fits
    await refused(limits, "alice")
    await limits.spend_reads("bob", 5)  # another user has a budget of their own
    assert limits.refusals["reads_per_minute"] == 2
    assert await client.zcard(subject_reads_key("alice")) == 5


async def test_the_wait_is_until_enough_units_leave_the_window(client: aioredis.Redis) -> None:
    limits = Limits(client, SETTINGS, window_s=3.0)
    await limits.spend_reads("alice", 2)
    await asyncio.sleep(1.2)
    await limits.spend_reads("alice", 3)
    # Needing 2 units: both of the first spend must leave, about 1.8 s from now.
    assert (await refused(limits, "alice", 2)).headers()["Retry-After"] == "2"
    deadline = time.monotonic() + 5
    while True:
        try:
            await limits.spend_reads("alice", 2)
            break
        except TooManyRequests:
            assert time.monotonic() < deadline, "the window never made room"
            await asyncio.sleep(0.05)


async def test_a_cost_above_the_whole_budget_is_charged_the_budget(
    client: aioredis.Redis,
) -> None:
    limits = Limits(client, SETTINGS)
    await limits.spend_reads("alice", 100)
    assert await client.zcard(subject_reads_key("alice")) == 5
    await refused(limits, "alice")


async def test_two_instances_share_one_budget(client: aioredis.Redis, redis_url: str) -> None:
    other = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        first, second = Limits(client, SETTINGS), Limits(other, SETTINGS)
        await first.spend_reads("alice", 3)
        await second.spend_reads("alice", 2)
        await refused(first, "alice")
        await refused(second, "alice")
    finally:
        await other.aclose()


async def test_the_budget_key_expires_with_its_window(client: aioredis.Redis) -> None:
    await Limits(client, SETTINGS).spend_reads("alice", 2)
    assert 0 < await client.pttl(subject_reads_key("alice")) <= 60_000


async def test_the_budget_fails_open_when_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    down = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        with caplog.at_level("WARNING", logger="broker.limits"):
            await Limits(down, SETTINGS).spend_reads("alice")
        assert [record.getMessage() for record in caplog.records] == [
            "read budget unavailable: ConnectionError"
        ]
    finally:
        await down.aclose()


def test_the_budget_shares_the_subjects_hash_slot() -> None:
    assert subject_reads_key("9f2c") == "broker:{9f2c}:reads"
    assert key_slot(subject_reads_key("9f2c").encode()) == key_slot(
        subject_creates_key("9f2c").encode()
    )
