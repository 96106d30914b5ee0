"""Injected faults, each seen by a real HTTP client with a short timeout."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.simulator.conftest import LiveSimulator

SHORT = httpx.Timeout(0.3)


async def test_a_delay_answers_normally_but_late(live: LiveSimulator) -> None:
    live.state.inject_fault("delay", method="POST", path="/v2/live", delay_s=0.4, count=2)

    async with live.client(timeout=SHORT) as impatient, live.client(timeout=5) as patient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post("/v2/live", json={})
        started = time.monotonic()
        response = await patient.post("/v2/live", json={})

    assert response.status_code == 201
    assert time.monotonic() - started >= 0.4


async def test_a_timeout_holds_the_request_until_the_client_gives_up(live: LiveSimulator) -> None:
    live.state.inject_fault("timeout", method="POST", path="/v2/live")

    async with live.client(timeout=SHORT) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v2/live", json={})
        after = await client.post("/v2/live", json={})

    assert after.status_code == 201
    assert len(live.state.sessions) == 1


async def test_a_status_fault_answers_with_gladias_envelope_and_retry_after(
    live: LiveSimulator,
) -> None:
    live.state.inject_fault(
        "status", method="POST", path="/v2/live", status=503, retry_after=2, count=2
    )

    async with live.client(timeout=SHORT) as client:
        responses = [await client.post("/v2/live", json={}) for _ in range(3)]

    assert [r.status_code for r in responses] == [503, 503, 201]
    first = responses[0]
    assert first.headers["retry-after"] == "2"
    assert first.json()["statusCode"] == 503
    assert first.json()["message"] == "Service Unavailable"
    assert first.json()["path"] == "/v2/live"
    assert live.state.sessions.keys() == {responses[2].json()["id"]}


@pytest.mark.parametrize("status", [500, 502, 429])
async def test_status_faults_take_any_error_code(live: LiveSimulator, status: int) -> None:
    live.state.inject_fault("status", path="/v2/live/*", status=status)

    async with live.client(timeout=SHORT) as client:
        response = await client.get("/v2/live/anything")

    assert response.status_code == status
    assert "retry-after" not in response.headers


async def test_a_drop_cuts_the_connection_mid_response(live: LiveSimulator) -> None:
    live.state.inject_fault("drop", method="POST", path="/v2/live")

    async with live.client(timeout=SHORT) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/v2/live", json={})

    assert live.state.sessions == {}


async def test_timeout_after_create_really_creates_the_session(live: LiveSimulator) -> None:
    live.state.inject_fault("timeout_after_create", method="POST", path="/v2/live")

    async with live.client(timeout=SHORT) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v2/live", json={"custom_metadata": {"attempt": 1}})

    [session] = live.state.sessions.values()
    assert session.custom_metadata == {"attempt": 1}
    assert session.status == "queued"


async def test_faults_only_hit_calls_that_match(live: LiveSimulator) -> None:
    live.state.inject_fault("status", method="GET", path="/v2/live/*", status=500)

    async with live.client(timeout=SHORT) as client:
        created = await client.post("/v2/live", json={})
        listed = await client.get("/v2/live")
        fetched = await client.get(f"/v2/live/{created.json()['id']}")

    assert (created.status_code, listed.status_code, fetched.status_code) == (201, 200, 500)


async def test_faults_never_apply_to_the_simulator_controls(live: LiveSimulator) -> None:
    live.state.inject_fault("status", status=500)

    async with live.client(timeout=SHORT) as client:
        controls = await client.get("/_simulator/calls")
        api = await client.get("/v2/live")

    assert controls.status_code == 200
    assert api.status_code == 500


async def test_faults_can_be_armed_over_http(live: LiveSimulator) -> None:
    spec = {"kind": "status", "method": "POST", "path": "/v2/live", "status": 429, "retry_after": 1}

    async with live.client(timeout=SHORT) as client:
        armed = await client.post("/_simulator/faults", json=spec)
        listed = (await client.get("/_simulator/faults")).json()["faults"]
        refused = await client.post("/v2/live", json={})

    assert armed.status_code == 201
    assert listed == [{**armed.json(), "remaining": 1}]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 200},
        {"kind": "delay", "count": 0},
        {"kind": "drop", "x": 1},
    ],
)
async def test_a_malformed_fault_spec_is_a_400(
    live: LiveSimulator, spec: dict[str, object]
) -> None:
    async with live.client(timeout=SHORT) as client:
        response = await client.post("/_simulator/faults", json=spec)

    assert response.status_code == 400
    assert response.json()["validation_errors"]
