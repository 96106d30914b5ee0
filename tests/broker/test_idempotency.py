"""Idempotency-Key on create, read back from the simulator's recorded calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx

from tests.broker.conftest import BrokerFactory, Simulator

Headers = Callable[[str], dict[str, str]]
BODY = {"sample_rate": 16000, "language_config": {"languages": ["en"]}}


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_a_repeated_create_returns_the_same_session_and_creates_once(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    headers = keyed(mint("alice"), "order-1")
    responses = [await broker.post("/v1/sessions", headers=headers, json=BODY) for _ in range(3)]
    assert [response.status_code for response in responses] == [201, 201, 201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert len({response.json()["url"] for response in responses}) == 1
    assert len(simulator.calls()) == 1


async def test_fifty_identical_creates_at_once_create_one_session(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    # Gladia answers slowly, so that every repeat arrives while the first is in flight.
    simulator.state.inject_fault("delay", method="POST", path="/v2/live", delay_s=0.3)
    headers = keyed(mint("alice"), "order-1")
    responses = await asyncio.gather(
        *(broker.post("/v1/sessions", headers=headers, json=BODY) for _ in range(50))
    )
    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["id"] for response in responses}) == 1
    assert len(simulator.calls()) == 1


async def test_a_repeat_from_another_instance_returns_the_same_session(
    broker: httpx.AsyncClient, broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    headers = keyed(mint("alice"), "order-1")
    first = await broker.post("/v1/sessions", headers=headers, json=BODY)
    async with broker_factory() as other:
        again = await other.post("/v1/sessions", headers=headers, json=BODY)
    assert again.json()["id"] == first.json()["id"]
    assert len(simulator.calls()) == 1


async def test_the_same_key_with_another_body_is_a_422(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    headers = keyed(mint("alice"), "order-1")
    assert (await broker.post("/v1/sessions", headers=headers, json=BODY)).status_code == 201
    other = await broker.post("/v1/sessions", headers=headers, json={"sample_rate": 48000})
    assert other.status_code == 422
    assert [error["field"] for error in other.json()["errors"]] == ["Idempotency-Key"]
    assert len(simulator.calls()) == 1


async def test_keys_are_per_user(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = await broker.post("/v1/sessions", headers=keyed(mint("alice"), "k"), json=BODY)
    bob = await broker.post("/v1/sessions", headers=keyed(mint("bob"), "k"), json=BODY)
    assert alice.json()["id"] != bob.json()["id"]
    assert len(simulator.calls()) == 2


async def test_a_create_gladia_refused_frees_the_key_for_a_retry(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    simulator.state.inject_fault("status", method="POST", path="/v2/live", status=429)
    headers = keyed(mint("alice"), "order-1")
    assert (await broker.post("/v1/sessions", headers=headers, json=BODY)).status_code == 503
    assert (await broker.post("/v1/sessions", headers=headers, json=BODY)).status_code == 201
    assert len(simulator.calls()) == 2


async def test_a_create_refused_by_a_limit_frees_the_key(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with broker_factory(max_live_per_subject=1) as broker:
        first = await broker.post("/v1/sessions", headers=keyed(alice, "a"), json=BODY)
        refused = await broker.post("/v1/sessions", headers=keyed(alice, "b"), json=BODY)
        assert (first.status_code, refused.status_code) == (201, 429)
    # Room again (a higher cap, same Redis): the refused attempt did not keep the key.
    async with broker_factory(max_live_per_subject=2) as broker:
        again = await broker.post("/v1/sessions", headers=keyed(alice, "b"), json=BODY)
    assert again.status_code == 201
    assert len(simulator.calls()) == 2


async def test_an_ambiguous_timeout_is_reconciled_without_a_second_create(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    # Gladia creates the session, but its answer never arrives: the outcome is unknown.
    simulator.state.inject_fault(
        "timeout_after_create", method="POST", path="/v2/live", timeout_s=5
    )
    headers = keyed(mint("alice"), "order-1")
    async with broker_factory(gladia_total_timeout_s=0.5, gladia_read_timeout_s=0.4) as broker:
        timed_out = await broker.post("/v1/sessions", headers=headers, json=BODY)
        assert timed_out.status_code == 504
        retried = await broker.post("/v1/sessions", headers=headers, json=BODY)
        assert retried.status_code == 409
        assert "new Idempotency-Key" in retried.json()["detail"]
        # The key stays spent: no later retry creates either.
        assert (await broker.post("/v1/sessions", headers=headers, json=BODY)).status_code == 409
        fresh = await broker.post("/v1/sessions", headers=keyed(headers, "order-2"), json=BODY)
        assert fresh.status_code == 201
    [created, *_] = simulator.calls()
    request_id = created.json["custom_metadata"]["broker_request_id"]
    [listing] = simulator.calls("GET", "/v2/live")
    assert parse_qs(listing.query)["custom_metadata[broker_request_id]"] == [request_id]
    # One create for order-1, one for order-2; the orphan's deletion was attempted.
    assert len(simulator.calls()) == 2
    [orphan_id] = [sid for sid in simulator.state.sessions if sid != fresh.json()["id"]]
    assert simulator.calls("DELETE", f"/v2/live/{orphan_id}")


async def test_a_create_that_never_reached_gladia_is_reconciled_then_created(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    # Gladia holds the request without acting on it: nothing was created.
    simulator.state.inject_fault("timeout", method="POST", path="/v2/live", timeout_s=5)
    headers = keyed(mint("alice"), "order-1")
    async with broker_factory(gladia_total_timeout_s=0.5, gladia_read_timeout_s=0.4) as broker:
        assert (await broker.post("/v1/sessions", headers=headers, json=BODY)).status_code == 504
        retried = await broker.post("/v1/sessions", headers=headers, json=BODY)
        assert retried.status_code == 201
        again = await broker.post("/v1/sessions", headers=headers, json=BODY)
        assert again.json()["id"] == retried.json()["id"]
    assert len(simulator.state.sessions) == 1
    order = [(call.method, call.path) for call in simulator.state.calls]
    # The list came before the new create, never after.
    assert order == [("POST", "/v2/live"), ("GET", "/v2/live"), ("POST", "/v2/live")]


async def test_a_malformed_key_is_refused_by_name(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    headers = keyed(mint("alice"), "x" * 300)
    response = await broker.post("/v1/sessions", headers=headers, json=BODY)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert simulator.calls() == []


async def test_two_keys_on_one_request_are_refused_not_decided_by_the_first(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    headers = [*mint("alice").items(), ("Idempotency-Key", "order-1"), ("Idempotency-Key", "b")]
    response = await broker.post("/v1/sessions", headers=headers, json=BODY)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "Idempotency-Key", "message": "must be sent once"}
    ]
    assert simulator.calls() == []
