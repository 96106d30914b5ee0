"""Leases, the create window, the account cap and address misses, on a real redis-server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from broker.errors import TooManyRequests
from broker.policy.limits import Limits, RecentMisses
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.keys import (
    ACCOUNT_LEASES_KEY,
    address_bucket,
    address_misses_key,
    idempotency_claim_key,
    subject_creates_key,
    subject_leases_key,
)
from broker.store.scripts import LuaFunction, Step
from tests.support.leases import confirm_leases
from tests.support.polling import eventually
from tests.support.servers import RedisServer

SETTINGS = Settings(
    max_live_per_subject=2,
    creates_per_minute=100,
    account_max_live=100,
    failed_attempts_per_minute=3,
    retry_after_s=5,
)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connection = open_redis(replace(SETTINGS, redis_url=redis_url, redis_max_connections=50))
    yield connection
    await connection.aclose()


def limits_for(client: aioredis.Redis, **changes: Any) -> Limits:
    """Limits on `client` with settings changed as named; two names are the windows' own."""
    window_s = float(changes.pop("window_s", 60.0))
    pending_margin_s = float(changes.pop("pending_margin_s", 30.0))
    settings = replace(SETTINGS, **changes)
    return Limits(client, settings, window_s=window_s, pending_margin_s=pending_margin_s)


async def refusal(call: Awaitable[object]) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as raised:
        await call
    return raised.value


async def test_a_subject_gets_its_cap_of_leases_then_a_429_with_retry_after(
    client: aioredis.Redis,
) -> None:
    limits = limits_for(client)
    await limits.admit("alice", "r1")
    await limits.admit("alice", "r2")
    refused = await refusal(limits.admit("alice", "r3"))
    assert refused.status_code == 429
    assert refused.reason == "live_per_subject"
    assert 1 <= int(refused.headers()["Retry-After"]) <= 5
    assert limits.refusals["live_per_subject"] == 1
    await limits.admit("bob", "r4")  # another subject is not affected


async def test_a_retried_admission_of_the_same_request_counts_once(client: aioredis.Redis) -> None:
    limits = limits_for(client)
    for _ in range(3):
        await limits.admit("alice", "r1")
    assert await limits.live_leases("alice") == 1
    assert await limits.live_leases() == 1
    assert await client.zcard(subject_creates_key("alice")) == 1


async def test_two_hundred_parallel_admissions_with_a_cap_of_five_grant_exactly_five(
    client: aioredis.Redis,
) -> None:
    limits = limits_for(client, max_live_per_subject=5)
    outcomes = await asyncio.gather(
        *(limits.admit("alice", f"r{n}") for n in range(200)), return_exceptions=True
    )
    granted = [outcome for outcome in outcomes if outcome is None]
    refused = [outcome for outcome in outcomes if isinstance(outcome, TooManyRequests)]
    assert (len(granted), len(refused)) == (5, 195)
    assert await limits.live_leases("alice") == 5
    assert await limits.live_leases() == 5


async def test_a_released_lease_comes_back_and_releasing_twice_is_harmless(
    client: aioredis.Redis,
) -> None:
    limits = limits_for(client, max_live_per_subject=1)
    await limits.admit("alice", "r1")
    await confirm_leases(client, limits, "alice", "r1", "session-1")
    await refusal(limits.admit("alice", "r2"))
    await limits.release_lease("alice", "session-1")
    await limits.release_lease("alice", "session-1")
    await limits.admit("alice", "r2")


async def test_confirming_renames_the_pending_lease_to_the_session(client: aioredis.Redis) -> None:
    limits = limits_for(client, lease_ttl_s=600)
    await limits.admit("alice", "r1")
    await confirm_leases(client, limits, "alice", "r1", "session-1")
    await confirm_leases(client, limits, "alice", "r1", "session-1")  # retried: still one lease
    for key in (subject_leases_key("alice"), ACCOUNT_LEASES_KEY):
        assert await client.zrange(key, 0, -1) == ["session-1"]
    expiry_ms = await client.zscore(subject_leases_key("alice"), "session-1")
    assert expiry_ms is not None
    time_s, _ = await client.time()
    assert 590_000 <= expiry_ms - time_s * 1000 <= 601_000


async def test_a_confirmed_lease_expires_by_itself(client: aioredis.Redis) -> None:
    limits = limits_for(client, max_live_per_subject=1, lease_ttl_s=1)
    await limits.admit("alice", "r1")
    await confirm_leases(client, limits, "alice", "r1", "session-1")
    await refusal(limits.admit("alice", "r2"))

    async def admitted() -> bool:
        try:
            await limits.admit("alice", "r2")
        except TooManyRequests:
            return False
        return True

    await eventually(admitted, within_s=5.0)


async def test_a_pending_lease_of_a_create_that_never_finished_expires_soon(
    client: aioredis.Redis,
) -> None:
    # A crash between admission and Gladia's answer must not hold the slot for a whole session.
    limits = limits_for(
        client, max_live_per_subject=1, gladia_total_timeout_s=0.5, pending_margin_s=0.5
    )
    await limits.admit("alice", "r1")
    await refusal(limits.admit("alice", "r2"))
    assert await client.pttl(subject_leases_key("alice")) > 1000  # the key outlives any lease
    await eventually(lambda: _admits(limits, "alice", "r2"), within_s=5.0)


async def _admits(limits: Limits, subject: str, request_id: str) -> bool:
    try:
        await limits.admit(subject, request_id)
    except TooManyRequests:
        return False
    return True


async def test_creates_per_window_are_capped_with_an_exact_retry_after(
    client: aioredis.Redis,
) -> None:
    limits = limits_for(client, max_live_per_subject=100, creates_per_minute=3, window_s=1.5)
    for n in range(3):
        await limits.admit("alice", f"r{n}")
    refused = await refusal(limits.admit("alice", "r3"))
    assert refused.reason == "creates_per_minute"
    assert refused.headers()["Retry-After"] in ("1", "2")
    await eventually(lambda: _admits(limits, "alice", "r3"), within_s=5.0)


async def test_the_account_cap_is_shared_by_every_subject(client: aioredis.Redis) -> None:
    limits = limits_for(client, account_max_live=2)
    await limits.admit("alice", "r1")
    await limits.admit("bob", "r2")
    refused = await refusal(limits.admit("carol", "r3"))
    assert refused.reason == "account_live"
    # What carol's subject script took is given back: no lease, no window entry.
    assert await client.zcard(subject_leases_key("carol")) == 0
    assert await client.zcard(subject_creates_key("carol")) == 0
    await limits.release_lease("alice", "r1")
    await limits.admit("carol", "r3")


async def test_two_instances_share_the_counts(client: aioredis.Redis, redis_url: str) -> None:
    other_client = open_redis(replace(SETTINGS, redis_url=redis_url))
    try:
        first, second = limits_for(client), limits_for(other_client)
        await first.admit("alice", "r1")
        await second.admit("alice", "r2")
        await refusal(first.admit("alice", "r3"))
        await refusal(second.admit("alice", "r3"))
    finally:
        await other_client.aclose()


async def test_an_admission_applied_during_a_stall_is_not_counted_again_on_retry(
    client: aioredis.Redis, redis_server: RedisServer, redis_url: str
) -> None:
    # security notes §4.3: a timed-out command may still be applied; a retry must not double it.
    impatient = open_redis(replace(SETTINGS, redis_url=redis_url, redis_socket_timeout_s=0.2))
    limits = limits_for(impatient)
    await limits.admit("warm-up", "r0")  # scripts loaded before the stall
    staller = threading.Thread(
        target=redis_server.client().execute_command, args=("DEBUG", "SLEEP", "0.6")
    )
    try:
        staller.start()
        await asyncio.sleep(0.05)
        with pytest.raises(redis.exceptions.TimeoutError):
            await limits.admit("alice", "r1")
        staller.join()
        await limits.admit("alice", "r1")
        assert await client.zcard(subject_leases_key("alice")) == 1
        assert await client.zcard(subject_creates_key("alice")) == 1
    finally:
        staller.join()
        await impatient.aclose()


async def test_misses_from_one_address_end_in_429_for_that_address_only(
    client: aioredis.Redis,
) -> None:
    limits = limits_for(client)
    for n in range(3):
        await limits.check_address("203.0.113.7")
        await limits.record_miss("203.0.113.7", f"a{n}")
    refused = await refusal(limits.check_address("203.0.113.7"))
    assert refused.reason == "failed_attempts"
    assert 1 <= int(refused.headers()["Retry-After"]) <= 60
    await limits.check_address("203.0.113.8")
    # The set keeps only as many entries as the limit needs.
    await limits.record_miss("203.0.113.7", "a9")
    assert await client.zcard(address_misses_key("203.0.113.7")) == 3


async def test_an_address_that_never_missed_here_costs_no_redis_round_trip_one_at_a_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Redis is down: a look-up fails open with a warning, so the warnings count the look-ups.
    down = open_redis(Settings(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout_s=0.2))
    try:
        limits = limits_for(down)
        with caplog.at_level("WARNING", logger="broker.limits"):
            assert await limits.check_address("203.0.113.7") is True
            assert caplog.records == []
            # While that request is unanswered, the same address's others are looked up.
            assert await limits.check_address("203.0.113.7") is False
            assert len(caplog.records) == 1
            limits.end_unchecked("203.0.113.7")
            assert await limits.check_address("203.0.113.7") is True
            assert len(caplog.records) == 1
            await limits.record_miss("203.0.113.7", "a1")
            limits.end_unchecked("203.0.113.7")
            caplog.clear()
            # After a miss here, every request is looked up for the window.
            assert await limits.check_address("203.0.113.7") is False
            assert [r.getMessage() for r in caplog.records] == [
                "attempt counter unavailable: ConnectionError"
            ]
    finally:
        await down.aclose()


async def test_misses_counted_by_another_instance_refuse_here_from_the_first_miss_here(
    client: aioredis.Redis,
) -> None:
    first, second = limits_for(client), limits_for(client)
    for n in range(3):
        await first.record_miss("203.0.113.7", f"a{n}")
    await refusal(first.check_address("203.0.113.7"))
    await second.check_address("203.0.113.7")  # never missed here: not looked up
    await second.record_miss("203.0.113.7", "a3")
    assert (await refusal(second.check_address("203.0.113.7"))).reason == "failed_attempts"


def test_recent_misses_look_up_every_address_once_full() -> None:
    recent = RecentMisses(window_s=60, capacity=2)
    recent.note("a")
    assert not recent.take_unchecked("a")
    assert recent.take_unchecked("b")
    recent.note("b")
    recent.note("c")  # over capacity: the oldest goes, and every address is looked up
    assert not recent.take_unchecked("never-missed")


def test_recent_misses_forget_an_address_after_the_window() -> None:
    now = [100.0]
    recent = RecentMisses(window_s=60, clock=lambda: now[0])
    recent.note("a")
    now[0] += 59
    recent.note("b")
    assert not recent.take_unchecked("a")
    now[0] += 2
    assert recent.take_unchecked("a")
    assert not recent.take_unchecked("b")


async def test_misses_expire_with_their_window(client: aioredis.Redis) -> None:
    limits = limits_for(client, window_s=1.0)
    for n in range(3):
        await limits.record_miss("203.0.113.7", f"a{n}")
    await refusal(limits.check_address("203.0.113.7"))

    async def allowed() -> bool:
        try:
            await limits.check_address("203.0.113.7")
        except TooManyRequests:
            return False
        return True

    await eventually(allowed, within_s=5.0)


def test_ipv6_clients_are_grouped_by_their_64_bit_prefix() -> None:
    assert address_bucket("2001:db8:1:2::1") == address_bucket("2001:db8:1:2:ffff::9")
    assert address_bucket("2001:db8:1:2::1") != address_bucket("2001:db8:1:3::1")
    assert address_bucket("::ffff:203.0.113.7") == address_bucket("203.0.113.7")
    assert "203.0.113.7" not in address_misses_key("203.0.113.7")  # hashed, not stored raw


async def test_address_checks_fail_open_when_redis_is_down() -> None:
    down = open_redis(Settings(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout_s=0.2))
    try:
        limits = limits_for(down)
        await limits.check_address("203.0.113.7")
        await limits.record_miss("203.0.113.7", "a1")
        with pytest.raises(redis.exceptions.ConnectionError):
            await limits.admit("alice", "r1")  # creates fail closed
    finally:
        await down.aclose()


async def test_every_limit_key_has_a_ttl(client: aioredis.Redis) -> None:
    limits = limits_for(client)
    await limits.admit("alice", "r1")
    await confirm_leases(client, limits, "alice", "r1", "session-1")
    await limits.admit("alice", "r2")
    await limits.record_miss("203.0.113.7", "a1")
    keys = await client.keys("*")
    assert len(keys) == 4
    for key in keys:
        assert await client.pttl(key) > 0, key


def test_keys_used_together_share_a_hash_slot() -> None:
    # One script touches the subject's leases and window; the store and claims share the tag.
    subject = "9f2c"
    slots = {
        key_slot(key.encode())
        for key in (
            subject_leases_key(subject),
            subject_creates_key(subject),
            idempotency_claim_key(subject, "key-1"),
            f"broker:{{{subject}}}:session:abc",
        )
    }
    assert len(slots) == 1


# A guard on the subject's slot: refuses while its key exists.
_CLOSED = LuaFunction(
    "closed_guard",
    """
local function closed_guard(keys, argv)
  if redis.call('EXISTS', keys[1]) == 1 then return 'closed' end
  return ''
end
""",
    keys=1,
    args=0,
)


@pytest.mark.parametrize("cluster", [False, True], ids=["one script", "cluster's two"])
async def test_a_guard_runs_first_in_the_admission_and_a_refusal_admits_nothing(
    client: aioredis.Redis, cluster: bool
) -> None:
    limits = limits_for(client, redis_cluster=cluster)
    guard = Step(_CLOSED, ["broker:{alice}:closed"], [])
    assert await limits.admit("alice", "r1", guard=guard) is None
    await client.set("broker:{alice}:closed", 1)
    assert await limits.admit("alice", "r2", guard=guard) == "closed"
    assert await limits.live_leases("alice") == 1
    assert await limits.live_leases() == 1
    assert await client.zrange("broker:{alice}:creates", 0, -1) == ["r1"]


async def test_on_a_cluster_an_account_refusal_gives_back_what_the_subject_script_took(
    client: aioredis.Redis,
) -> None:
    limits = limits_for(client, redis_cluster=True, account_max_live=1)
    await limits.admit("alice", "r1")
    refused = await refusal(limits.admit("bob", "r2", token_id="t2", max_sessions=3))
    assert refused.reason == "account_live"
    assert await limits.live_leases("bob") == 0
    # Emptied, so gone: the create window and the token's uses hold nothing of r2.
    assert await client.exists("broker:{bob}:creates", "broker:{bob}:token-uses:t2") == 0
