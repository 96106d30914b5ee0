"""Usage: finished sessions counted into their owner's day once, read back by `GET /v1/usage`,
and a daily budget refused before Gladia; on the simulator and real Redis (server and Cluster).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from broker.events.results import ResultFetcher
from broker.gladia.client import open_gladia
from broker.identity.credentials import Subject
from broker.observability.metrics import Metrics
from broker.policy.limits import Limits
from broker.policy.usage import Usage
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.keys import subject_usage_key
from broker.store.records import SessionStore
from tests.broker.conftest import CANARY_SERVICE_KEY, BrokerFactory, Simulator
from tests.simulator.audio import speech
from tests.support.bound_tokens import bound_headers
from tests.support.polling import eventually
from tests.support.records import session_record
from tests.support.sdk import stream_to_created

Headers = Callable[[str], dict[str, str]]
SERVICE = {"Authorization": f"Bearer {CANARY_SERVICE_KEY}"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[redis.Redis]:
    connection = open_redis(settings)
    yield connection
    await connection.aclose()


def key(subject: str) -> str:
    return Subject(id=subject).key


def final_result(seconds: float, **extra: Any) -> dict[str, Any]:
    completed = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "status": "done",
        "completed_at": completed,
        "result": {"metadata": {"audio_duration": seconds / 2, "billing_time": seconds}},
        **extra,
    }


async def test_a_finished_session_is_counted_into_its_owners_day_once(
    broker: httpx.AsyncClient, settings: Settings, client: redis.Redis
) -> None:
    alice = bound_headers(settings, "alice", client_ref="order-17")
    created = (await broker.post("/v1/sessions", headers=alice, json={})).json()
    await stream_to_created(created, speech()[:32000])
    result: dict[str, Any] = {}

    async def final() -> bool:
        nonlocal result
        response = await broker.get(f"/v1/sessions/{created['id']}/result", headers=alice)
        result = response.json()
        return bool(result["status"] == "done")

    await eventually(final, within_s=20.0)
    billed = result["result"]["metadata"]["billing_time"]
    assert billed > 0
    usage = (await broker.get("/v1/usage", headers=alice)).json()
    today = datetime.now(UTC).date().isoformat()
    assert usage["days"] == [
        {"day": today, "seconds": billed, "sessions": 1, "by_client_ref": {"order-17": billed}}
    ]
    assert usage["total_seconds"] == billed
    assert "subject" not in usage
    # The cached result again, then the fetcher's last step run twice more: counted once.
    await broker.get(f"/v1/sessions/{created['id']}/result", headers=alice)
    record = await SessionStore(client, settings).load(key("alice"), created["id"])
    assert record is not None and record.client_ref == "order-17"
    metrics = Metrics()
    async with open_gladia(settings) as gladia:
        fetcher = ResultFetcher(
            SessionStore(client, settings), gladia, Limits(client, settings), Usage(client, metrics)
        )
        assert await fetcher.finish_if_final(record, result)
        assert await fetcher.finish_if_final(record, result)
    assert metrics.registry.get_sample_value("broker_usage_audio_seconds_total") == 0
    again = (await broker.get("/v1/usage", headers=alice)).json()
    assert again["days"] == usage["days"]


async def test_usage_counts_once_and_feeds_the_audio_seconds_metric(client: redis.Redis) -> None:
    metrics = Metrics()
    usage = Usage(client, metrics)
    result = final_result(12.5)
    assert await usage.count(key("alice"), "s-1", result, "ref-a")
    assert not await usage.count(key("alice"), "s-1", result, "ref-a")
    assert await usage.count(key("alice"), "s-2", final_result(3.0))
    assert metrics.registry.get_sample_value("broker_usage_audio_seconds_total") == 15.5
    today = datetime.now(UTC).date()
    [day] = await usage.days(key("alice"), today, today)
    assert (day.seconds, day.sessions, day.by_client_ref) == (15.5, 2, {"ref-a": 12.5})
    stored = subject_usage_key(key("alice"), today.isoformat())
    assert 34 * 86400 < await client.ttl(stored) <= 35 * 86400
    [nothing] = await usage.days(key("bob"), today, today)
    assert (nothing.seconds, nothing.sessions, nothing.by_client_ref) == (0.0, 0, {})


async def test_a_user_reads_its_own_usage_and_the_service_key_anyones(
    broker: httpx.AsyncClient, mint: Headers, client: redis.Redis
) -> None:
    usage = Usage(client)
    await usage.count(key("alice"), "s-1", final_result(30.0), "ref-a")
    await usage.count(key("bob"), "s-2", final_result(7.0))
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()

    own = await broker.get("/v1/usage", headers=mint("alice"))
    assert own.status_code == 200
    assert own.headers["cache-control"] == "no-store"
    assert own.json()["total_seconds"] == 30.0
    named = await broker.get("/v1/usage", headers=mint("alice"), params={"sub": "alice"})
    assert named.json()["subject"] == "alice"
    service = await broker.get(
        "/v1/usage", headers=SERVICE, params={"sub": "bob", "from": yesterday}
    )
    assert service.status_code == 200
    assert service.json()["subject"] == "bob"
    assert [day["day"] for day in service.json()["days"]] == [yesterday, today.isoformat()]
    assert [day["seconds"] for day in service.json()["days"]] == [0.0, 7.0]
    assert service.json()["total_seconds"] == 7.0

    others = await broker.get("/v1/usage", headers=mint("alice"), params={"sub": "bob"})
    assert others.status_code == 403
    assert "7.0" not in others.text
    assert (await broker.get("/v1/usage")).status_code == 401
    bad_token = {"Authorization": "Bearer not-a-token"}
    assert (
        await broker.get("/v1/usage", headers=bad_token, params={"sub": "bob"})
    ).status_code == 401
    unnamed = await broker.get("/v1/usage", headers=SERVICE)
    assert unnamed.status_code == 400
    assert unnamed.json()["errors"][0]["field"] == "sub"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "20260101"}, "from"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ({"from": "2026-01-01", "to": "2026-02-01"}, "from"),
        ({"days": "3"}, "days"),
    ],
)
async def test_a_bad_usage_query_is_a_400_naming_the_parameter(
    broker: httpx.AsyncClient, mint: Headers, params: dict[str, str], field: str
) -> None:
    response = await broker.get("/v1/usage", headers=mint("alice"), params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


async def test_thirty_one_days_may_be_read_at_once(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    params = {"from": "2026-01-01", "to": "2026-01-31"}
    response = await broker.get("/v1/usage", headers=mint("alice"), params=params)
    assert response.status_code == 200
    assert len(response.json()["days"]) == 31


async def test_a_subject_over_its_daily_budget_gets_a_429_until_utc_midnight(
    broker_factory: BrokerFactory, mint: Headers, client: redis.Redis, simulator: Simulator
) -> None:
    now = datetime.now(UTC)
    # Today, and tomorrow in case the test runs across midnight.
    for day in (now.date(), now.date() + timedelta(days=1)):
        await client.hset(subject_usage_key(key("alice"), day.isoformat()), "seconds", "60.0")
        await client.hset(subject_usage_key(key("bob"), day.isoformat()), "seconds", "59.5")
        await client.expire(subject_usage_key(key("alice"), day.isoformat()), 3 * 86400)
        await client.expire(subject_usage_key(key("bob"), day.isoformat()), 3 * 86400)
    async with broker_factory(budget_seconds_per_day=60) as broker:
        refused = await broker.post("/v1/sessions", headers=mint("alice"), json={})
        facade = await broker.post("/v2/live", headers=mint("alice"), json={})
        assert not simulator.calls(), "a create over budget reached Gladia"
        allowed = await broker.post("/v1/sessions", headers=mint("bob"), json={})
    assert refused.status_code == 429
    assert refused.json()["reason"] == "budget_seconds_per_day"
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= (midnight - now).total_seconds() + 1
    assert facade.status_code == 429
    assert allowed.status_code == 201
    assert len(simulator.calls()) == 1


async def test_without_a_budget_usage_never_refuses(
    broker: httpx.AsyncClient, mint: Headers, client: redis.Redis
) -> None:
    day = datetime.now(UTC).date().isoformat()
    await client.hset(subject_usage_key(key("alice"), day), "seconds", "1000000")
    await client.expire(subject_usage_key(key("alice"), day), 86400)
    assert (await broker.post("/v1/sessions", headers=mint("alice"), json={})).status_code == 201


async def test_a_record_without_client_ref_counts_no_ref(client: redis.Redis) -> None:
    record = session_record("s-9", key("carol"), "r" * 32)
    usage = Usage(client)
    assert await usage.count(record.owner, record.id, final_result(4.0), record.client_ref)
    today = datetime.now(UTC).date()
    [day] = await usage.days(record.owner, today, today)
    assert day.by_client_ref == {}
    assert day.seconds == 4.0
