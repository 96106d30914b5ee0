"""Idempotency-Key claims on a real redis-server: claim, replay, wait, take over, settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from broker.errors import Conflict, InvalidFields
from broker.policy.idempotency import Claim, Idempotency, Replay, fingerprint, validate_key
from broker.settings import Settings
from broker.store.connection import open_redis

# Gladia's deadline and the grace are short so that waiting and taking over are quick to test.
SETTINGS = Settings(gladia_total_timeout_s=0.4, idempotency_ttl_s=60, retry_after_s=3)
BODY = fingerprint({"language_config": {"languages": ["en"]}}, None)


@pytest.fixture
async def idempotency(redis_url: str) -> AsyncIterator[Idempotency]:
    client = open_redis(Settings(redis_url=redis_url))
    yield Idempotency(client, SETTINGS, grace_s=0.2)
    await client.aclose()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connection = open_redis(Settings(redis_url=redis_url))
    yield connection
    await connection.aclose()


async def claimed(idempotency: Idempotency, request_id: str = "r1", key: str = "k1") -> Claim:
    begun = await idempotency.begin("alice", key, BODY, request_id)
    assert isinstance(begun, Claim)
    return begun


async def test_the_first_request_claims_and_a_repeat_replays_the_session(
    idempotency: Idempotency, client: aioredis.Redis
) -> None:
    claim = await claimed(idempotency)
    assert claim.previous_request_id is None
    assert await idempotency.settle(claim, "done", "session-1")
    assert await idempotency.begin("alice", "k1", BODY, "r2") == Replay("session-1")
    assert 0 < await client.pttl(claim.key) <= 60_000


async def test_the_same_key_with_another_body_is_a_422_naming_the_header(
    idempotency: Idempotency,
) -> None:
    await claimed(idempotency)
    with pytest.raises(InvalidFields) as raised:
        await idempotency.begin("alice", "k1", fingerprint({"other": 1}, None), "r2")
    assert [p.field for p in raised.value.problems] == ["Idempotency-Key"]


async def test_keys_belong_to_their_subject(idempotency: Idempotency) -> None:
    await claimed(idempotency)
    assert isinstance(await idempotency.begin("bob", "k1", BODY, "r2"), Claim)


async def test_a_repeat_waits_for_the_request_in_flight_and_gets_its_session(
    idempotency: Idempotency,
) -> None:
    claim = await claimed(idempotency)

    async def finish_soon() -> None:
        await asyncio.sleep(0.1)
        await idempotency.settle(claim, "done", "session-1")

    finisher = asyncio.create_task(finish_soon())
    assert await idempotency.begin("alice", "k1", BODY, "r2") == Replay("session-1")
    await finisher


async def test_a_repeat_that_outlasts_the_owners_deadline_takes_the_claim_over(
    idempotency: Idempotency,
) -> None:
    await claimed(idempotency)  # never settled: its instance went away mid-create
    started = time.monotonic()
    takeover = await claimed(idempotency, "r2")
    # It waited for Gladia's deadline and the grace, then reconciles the earlier attempt.
    assert 0.5 <= time.monotonic() - started < 1.5
    assert takeover.previous_request_id == "r1"


async def test_a_failed_create_frees_the_key(idempotency: Idempotency) -> None:
    claim = await claimed(idempotency)
    assert await idempotency.settle(claim, "abandon")
    again = await claimed(idempotency, "r2")
    assert again.previous_request_id is None


async def test_an_unknown_outcome_is_taken_over_for_reconciliation_after_the_grace(
    idempotency: Idempotency,
) -> None:
    claim = await claimed(idempotency)
    await idempotency.settle(claim, "unknown", "r1")
    started = time.monotonic()
    takeover = await claimed(idempotency, "r2")
    assert takeover.previous_request_id == "r1"
    assert time.monotonic() - started >= 0.15
    # The old owner can no longer settle the claim it lost.
    assert not await idempotency.settle(claim, "done", "session-1")


async def test_a_spent_key_is_a_409_for_good(idempotency: Idempotency) -> None:
    claim = await claimed(idempotency)
    await idempotency.settle(claim, "spent")
    with pytest.raises(Conflict, match="new Idempotency-Key"):
        await idempotency.begin("alice", "k1", BODY, "r2")


async def test_fifty_parallel_claims_have_one_owner_and_forty_nine_replays(
    idempotency: Idempotency,
) -> None:
    async def one(n: int) -> Claim | Replay:
        begun = await idempotency.begin("alice", "k1", BODY, f"r{n}")
        if isinstance(begun, Claim):
            await asyncio.sleep(0.05)
            await idempotency.settle(begun, "done", "session-1")
        return begun

    outcomes = await asyncio.gather(*(one(n) for n in range(50)))
    assert sum(isinstance(outcome, Claim) for outcome in outcomes) == 1
    assert outcomes.count(Replay("session-1")) == 49


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there", "é"])
def test_a_malformed_key_is_a_422_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidFields) as raised:
        validate_key(value)
    assert [p.field for p in raised.value.problems] == ["Idempotency-Key"]


def test_the_fingerprint_ignores_key_order_but_not_values_or_region() -> None:
    assert fingerprint({"a": 1, "b": 2}, None) == fingerprint({"b": 2, "a": 1}, None)
    assert fingerprint({"a": 1}, None) != fingerprint({"a": 2}, None)
    assert fingerprint({"a": 1}, None) != fingerprint({"a": 1}, "us-west")


async def test_renewing_just_before_the_send_holds_off_a_takeover(
    idempotency: Idempotency,
) -> None:
    claim = await claimed(idempotency)
    # Most of the patience (deadline 0.4 s + grace 0.2 s) goes by before the create is sent …
    await asyncio.sleep(0.45)
    await idempotency.renew(claim)
    # … so a repeat now waits for the renewed deadline instead of taking over.
    started = time.monotonic()
    begun = await idempotency.begin("alice", "k1", BODY, "r2")
    assert isinstance(begun, Claim) and begun.previous_request_id == "r1"
    assert time.monotonic() - started >= 0.4


async def test_a_claim_taken_over_cannot_be_renewed(idempotency: Idempotency) -> None:
    claim = await claimed(idempotency)
    await asyncio.sleep(0.65)
    takeover = await idempotency.begin("alice", "k1", BODY, "r2")
    assert isinstance(takeover, Claim)
    with pytest.raises(Conflict):
        await idempotency.renew(claim)
    await idempotency.renew(takeover)
