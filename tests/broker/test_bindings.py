"""A token's bindings on creates, through the whole broker, on the simulator and real Redis.

Each refusal is a 403 with the binding's reason, answered before any call to Gladia; a token's
`max_sessions` holds across instances; `max_duration_s` ends the URL and the leases early.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.identity.credentials import Subject
from broker.policy.limits import Limits
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.keys import session_record_key, token_uses_key
from tests.broker.conftest import BrokerFactory, Simulator
from tests.support.bound_tokens import bound_headers, token_id_of
from tests.support.polling import eventually

PRESETS = {
    "presets": {
        "solo": {"config": {"channels": 1}, "overrides": []},
        "stereo": {"config": {"channels": 2}, "overrides": []},
    }
}


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post("/v1/sessions", headers=headers, json=body or {})


def refused_for(response: httpx.Response, reason: str) -> bool:
    return (
        response.status_code == 403
        and response.headers["content-type"] == "application/problem+json"
        and response.json()["reason"] == reason
    )


@pytest.fixture
def with_presets(settings: Settings, tmp_path: Path) -> Settings:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(PRESETS))
    return replace(settings, policy_file=str(policy_file))


async def test_a_token_bound_to_presets_creates_only_from_those(
    broker_factory: BrokerFactory, with_presets: Settings, simulator: Simulator
) -> None:
    alice = bound_headers(with_presets, "alice", presets=("solo",))
    async with broker_factory(policy_file=with_presets.policy_file) as broker:
        without = await create(broker, alice)
        other = await create(broker, alice, {"preset": "stereo"})
        facade = await broker.post("/v2/live", headers=alice, json={"encoding": "wav/pcm"})
        assert not simulator.calls(), "a refused binding reached Gladia"
        allowed = await create(broker, alice, {"preset": "solo"})
    assert refused_for(without, "binding_preset")
    assert "solo" in without.json()["detail"]
    assert refused_for(other, "binding_preset")
    assert "'stereo'" in other.json()["detail"]
    # The facade answers in Gladia's envelope, with the same status.
    assert facade.status_code == 403
    assert facade.json()["statusCode"] == 403
    assert allowed.status_code == 201
    assert len(simulator.calls()) == 1


async def test_a_token_bound_to_channels_refuses_more_and_gladias_default_is_one(
    broker: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    alice = bound_headers(settings, "alice", max_channels=1)
    refused = await create(broker, alice, {"channels": 2})
    assert refused_for(refused, "binding_channels")
    assert "2 channels" in refused.json()["detail"]
    assert not simulator.calls()
    assert (await create(broker, alice)).status_code == 201
    assert (await create(broker, alice, {"channels": 1})).status_code == 201
    assert len(simulator.calls()) == 2


async def test_a_single_use_token_creates_one_session_of_twenty_parallel_on_two_instances(
    broker_factory: BrokerFactory, settings: Settings, simulator: Simulator
) -> None:
    alice = bound_headers(settings, "alice", max_sessions=1)
    async with (
        broker_factory(creates_per_minute=100) as first,
        broker_factory(creates_per_minute=100) as second,
    ):
        responses = await asyncio.gather(
            *(create(first if n % 2 else second, alice) for n in range(20))
        )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [403] * 19
    assert all(refused_for(r, "binding_sessions") for r in responses if r.status_code == 403)
    assert len(simulator.calls()) == 1


async def test_a_token_bound_to_three_sessions_creates_exactly_three(
    broker_factory: BrokerFactory, settings: Settings, simulator: Simulator
) -> None:
    alice = bound_headers(settings, "alice", max_sessions=3)
    async with (
        broker_factory(creates_per_minute=100) as first,
        broker_factory(creates_per_minute=100) as second,
    ):
        responses = await asyncio.gather(
            *(create(first if n % 2 else second, alice) for n in range(12))
        )
        # Another token of the same user has uses of its own.
        again = await create(first, bound_headers(settings, "alice", max_sessions=1))
    assert sorted(r.status_code for r in responses) == [201] * 3 + [403] * 9
    assert again.status_code == 201
    assert len(simulator.calls()) == 4


async def test_a_create_gladia_refused_gives_the_use_back(
    broker: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    alice = bound_headers(settings, "alice", max_sessions=1)
    simulator.state.inject_fault("status", status=429, method="POST", path="/v2/live")
    assert (await create(broker, alice)).status_code == 503  # Gladia's account was full
    assert (await create(broker, alice)).status_code == 201
    assert refused_for(await create(broker, alice), "binding_sessions")
    assert len(simulator.calls()) == 2


async def test_a_create_refused_before_gladia_gives_the_use_back(
    broker_factory: BrokerFactory, settings: Settings, simulator: Simulator
) -> None:
    alice = bound_headers(settings, "alice", max_sessions=1)
    async with broker_factory(account_max_live=1) as broker:
        assert (await create(broker, bound_headers(settings, "bob"))).status_code == 201
        # The account is full: refused after the subject's script took the use.
        full = await create(broker, alice)
        assert full.status_code == 429
        assert full.json()["reason"] == "account_live"
    async with broker_factory() as broker:
        assert (await create(broker, alice)).status_code == 201
    assert len(simulator.calls()) == 2


async def test_an_unknown_outcome_keeps_the_use_spent(
    broker: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    alice = bound_headers(settings, "alice", max_sessions=1)
    simulator.state.inject_fault(
        "timeout_after_create", method="POST", path="/v2/live", timeout_s=5
    )
    assert (await create(broker, alice)).status_code == 504
    # Gladia may hold a live session from it: the token does not get a second one.
    assert refused_for(await create(broker, alice), "binding_sessions")
    assert len(simulator.calls()) == 1


async def test_the_uses_are_request_ids_with_the_token_ttl(
    broker: httpx.AsyncClient, settings: Settings
) -> None:
    alice = bound_headers(settings, "alice", max_sessions=2)
    assert (await create(broker, alice)).status_code == 201
    client = open_redis(settings)
    try:
        key = token_uses_key(Subject(id="alice").key, token_id_of(settings, alice))
        assert await client.type(key) == "set"
        assert await client.scard(key) == 1
        assert 0 < await client.ttl(key) <= settings.token_max_ttl_s
    finally:
        await client.aclose()


async def test_a_bound_duration_ends_the_url_and_the_leases_early(
    broker: httpx.AsyncClient, settings: Settings
) -> None:
    alice = bound_headers(settings, "alice", max_duration_s=1, client_ref="order-17")
    created = await create(broker, alice)
    assert created.status_code == 201
    session = created.json()
    assert "url" in session
    assert session["client_ref"] == "order-17"
    lifetime_s = _seconds_between(session["created_at"], session["expires_at"])
    assert lifetime_s <= 2, "expires_at must follow max_duration_s, not Gladia's 3 h"
    client = open_redis(settings)
    limits = Limits(client, settings)
    try:
        assert await limits.live_leases(Subject(id="alice").key) == 1

        async def url_withheld() -> bool:
            found = await broker.get(f"/v1/sessions/{session['id']}", headers=alice)
            return found.status_code == 200 and "url" not in found.json()

        async def leases_freed() -> bool:
            return await limits.live_leases(Subject(id="alice").key) == 0

        await eventually(url_withheld)
        await eventually(leases_freed)
        shown = (await broker.get(f"/v1/sessions/{session['id']}", headers=alice)).json()
        assert shown["client_ref"] == "order-17"
        assert shown["status"] == "created"
        stored = await client.get(session_record_key(Subject(id="alice").key, session["id"]))
        assert isinstance(stored, str) and "order-17" in stored.split("\n")
    finally:
        await client.aclose()


async def test_a_replay_of_an_expired_session_is_a_conflict_not_its_url(
    broker: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    alice = {**bound_headers(settings, "alice", max_duration_s=1), "Idempotency-Key": "k-1"}
    first = await create(broker, alice)
    assert first.status_code == 201

    async def replay_refused() -> bool:
        return (await create(broker, alice)).status_code == 409

    await eventually(replay_refused)
    assert len(simulator.calls()) == 1


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
