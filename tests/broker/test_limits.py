"""Limits through the whole broker, on the simulator and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from broker.policy.limits import Limits
from broker.settings import Settings
from broker.web.app import create_app
from tests.broker.conftest import BrokerFactory, Simulator
from tests.simulator.audio import speech
from tests.support.polling import eventually
from tests.support.sdk import stream_to_created

Headers = Callable[[str], dict[str, str]]


@dataclass
class Instance:
    """A broker app with its lifespan running, reached from a chosen client address."""

    app: Starlette

    @property
    def limits(self) -> Limits:
        limits: Limits = self.app.state.resources.limits
        return limits

    def client(self, address: str = "198.51.100.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://broker.test")


@asynccontextmanager
async def instance(settings: Settings) -> AsyncIterator[Instance]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield Instance(app)


async def create(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/v1/sessions", headers=headers, json={"sample_rate": 16000})


async def test_two_hundred_parallel_creates_with_a_cap_of_five_reach_gladia_five_times(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with broker_factory(max_live_per_subject=5, creates_per_minute=1000) as broker:
        responses = await asyncio.gather(*(create(broker, alice) for _ in range(200)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 5 + [429] * 195
    assert len(simulator.calls()) == 5
    assert (
        len({response.json()["id"] for response in responses if response.status_code == 201}) == 5
    )
    refused = next(response for response in responses if response.status_code == 429)
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 5


async def test_two_instances_share_the_counts(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with (
        broker_factory(max_live_per_subject=2) as first,
        broker_factory(max_live_per_subject=2) as second,
    ):
        assert (await create(first, alice)).status_code == 201
        assert (await create(second, alice)).status_code == 201
        assert (await create(first, alice)).status_code == 429
        assert (await create(second, alice)).status_code == 429
        assert (await create(second, mint("bob"))).status_code == 201
    assert len(simulator.calls()) == 3


async def test_a_lease_comes_back_after_its_session_ends_and_is_deleted(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with (
        instance(replace(settings, max_live_per_subject=1)) as broker,
        broker.client() as client,
    ):
        created = (await create(client, alice)).json()
        assert (await create(client, alice)).status_code == 429
        await stream_to_created(created, speech()[:32000])

        async def result_is_final() -> bool:
            response = await client.get(f"/v1/sessions/{created['id']}/result", headers=alice)
            return bool(response.json()["status"] == "done")

        # Seen final: the session no longer counts, whatever its record says.
        await eventually(result_is_final)
        assert await broker.limits.live_leases() == 0
        assert (await create(client, alice)).status_code == 201
        # And a delete gives its lease back too.
        deleted = await client.delete(f"/v1/sessions/{created['id']}", headers=alice)
        assert deleted.status_code == 204
    assert len(simulator.calls()) == 2


async def test_a_lease_comes_back_after_it_expires(
    broker_factory: BrokerFactory, mint: Headers
) -> None:
    alice = mint("alice")
    async with broker_factory(max_live_per_subject=1, lease_ttl_s=1) as broker:
        assert (await create(broker, alice)).status_code == 201
        assert (await create(broker, alice)).status_code == 429

        async def created_again() -> bool:
            return (await create(broker, alice)).status_code == 201

        await eventually(created_again)


async def test_creates_per_minute_are_capped(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with broker_factory(creates_per_minute=2) as broker:
        assert [(await create(broker, alice)).status_code for _ in range(3)] == [201, 201, 429]
        refused = await create(broker, alice)
    assert refused.json()["detail"].startswith("Too many sessions created")
    assert 50 <= int(refused.headers["retry-after"]) <= 60
    assert len(simulator.calls()) == 2


async def test_the_account_cap_answers_our_429_before_gladias(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    async with broker_factory(account_max_live=2) as broker:
        assert (await create(broker, mint("alice"))).status_code == 201
        assert (await create(broker, mint("bob"))).status_code == 201
        refused = await create(broker, mint("carol"))
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("Transcription capacity")
    assert len(simulator.calls()) == 2


async def test_creates_fail_closed_when_redis_is_down(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    async with broker_factory(
        redis_url="redis://127.0.0.1:1/0", redis_connect_timeout_s=0.2
    ) as broker:
        started = time.monotonic()
        response = await create(broker, mint("alice"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert time.monotonic() - started < 2
    assert simulator.calls() == []


async def test_failed_authentications_from_one_address_end_in_429(
    settings: Settings, mint: Headers
) -> None:
    async with instance(replace(settings, failed_attempts_per_minute=3)) as broker:
        async with broker.client("203.0.113.7") as attacker, broker.client() as neighbour:
            for _ in range(3):
                response = await create(attacker, {"Authorization": "Bearer guessed"})
                assert response.status_code == 401
            refused = await create(attacker, mint("alice"))
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert (await create(neighbour, mint("bob"))).status_code == 201
        assert broker.limits.refusals["failed_attempts"] == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/subjects/alice/revoke"), ("GET", "/v1/usage"), ("DELETE", "/v1/tokens/x")],
)
async def test_service_key_guesses_count_on_the_token_and_usage_routes_too(
    settings: Settings, method: str, path: str
) -> None:
    async with (
        instance(replace(settings, failed_attempts_per_minute=3)) as broker,
        broker.client("203.0.113.7") as attacker,
    ):
        guessed = {"Authorization": "Bearer guessed-service-key"}
        for _ in range(3):
            assert (await attacker.request(method, path, headers=guessed)).status_code == 401
        refused = await attacker.request(method, path, headers=guessed)
        assert refused.status_code == 429
        assert refused.json()["reason"] == "failed_attempts"


async def test_not_found_answers_count_too_against_guessing_session_ids(
    settings: Settings, mint: Headers
) -> None:
    alice = mint("alice")
    async with (
        instance(replace(settings, failed_attempts_per_minute=3)) as broker,
        broker.client("203.0.113.7") as client,
    ):
        for guess in range(3):
            response = await client.get(f"/v1/sessions/guess-{guess}", headers=alice)
            assert response.status_code == 404
        refused = await client.get("/v1/sessions/guess-4", headers=alice)
        assert refused.status_code == 429
        assert (await client.get("/healthz")).status_code == 200


async def test_every_refusal_is_counted_by_reason(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    limits_on = replace(settings, max_live_per_subject=1, account_max_live=2)
    async with instance(limits_on) as broker:
        async with broker.client() as client:
            outcomes: list[Any] = [
                (await create(client, mint(user))).status_code
                for user in ("alice", "alice", "bob", "carol")
            ]
        assert outcomes == [201, 429, 201, 429]
        assert dict(broker.limits.refusals) == {"live_per_subject": 1, "account_live": 1}
