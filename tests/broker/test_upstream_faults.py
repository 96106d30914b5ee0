"""Each way Gladia can fail maps to one deliberate answer, and a create is never sent twice."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.datastructures import Secret

from tests.broker.conftest import CANARY_GLADIA_KEY, BrokerFactory, Simulator


async def create(broker: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await broker.post("/v1/sessions", headers=headers, json={"sample_rate": 16000})


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        ({"kind": "status", "status": 500}, 502, None),
        ({"kind": "status", "status": 502}, 502, None),
        ({"kind": "status", "status": 503}, 502, None),
        ({"kind": "status", "status": 401}, 502, None),
        ({"kind": "status", "status": 403}, 502, None),
        ({"kind": "status", "status": 429, "retry_after": 7}, 503, "7"),
        ({"kind": "status", "status": 429}, 503, "5"),
        ({"kind": "drop"}, 502, None),
        ({"kind": "timeout", "timeout_s": 5}, 504, None),
    ],
)
async def test_an_upstream_failure_maps_to_a_deliberate_answer(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    simulator: Simulator,
    fault: dict[str, Any],
    status: int,
    retry_after: str | None,
) -> None:
    simulator.state.inject_fault(method="POST", path="/v2/live", **fault)
    response = await create(broker, mint("alice"))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get("retry-after") == retry_after
    assert "gladia-key" not in response.text.lower()
    assert len(simulator.calls()) == 1, "a create must never be retried"


async def test_gladias_validation_errors_name_the_field(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], simulator: Simulator
) -> None:
    simulator.state.inject_fault(
        "status", status=400, method="POST", path="/v2/live", message="Bad Request"
    )
    response = await create(broker, mint("alice"))
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid session configuration"


async def test_a_timeout_after_gladia_created_the_session_does_not_create_a_second(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], simulator: Simulator
) -> None:
    simulator.state.inject_fault(
        "timeout_after_create", method="POST", path="/v2/live", timeout_s=5
    )
    response = await create(broker, mint("alice"))
    assert response.status_code == 504
    assert len(simulator.calls()) == 1
    assert len(simulator.state.sessions) == 1


async def test_a_refused_key_is_a_502_that_says_nothing_about_the_key(
    broker_factory: BrokerFactory,
    mint: Callable[[str], dict[str, str]],
    simulator: Simulator,
) -> None:
    async with broker_factory(gladia_api_key=Secret(CANARY_GLADIA_KEY + "-revoked")) as other:
        response = await create(other, mint("alice"))
    assert response.status_code == 502
    assert response.json() == {
        "type": "/problems/upstream-error",
        "title": "Bad gateway",
        "status": 502,
        "reason": "upstream_error",
        "detail": "Gladia could not serve the request",
    }


async def test_a_slow_but_successful_gladia_is_waited_for(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], simulator: Simulator
) -> None:
    simulator.state.inject_fault("delay", delay_s=0.3, method="POST", path="/v2/live")
    response = await create(broker, mint("alice"))
    assert response.status_code == 201


async def test_an_unreachable_gladia_is_a_502(
    broker_factory: BrokerFactory, mint: Callable[[str], dict[str, str]]
) -> None:
    from tests.support.servers import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    async with broker_factory(gladia_api_url=closed) as other:
        response = await create(other, mint("alice"))
    assert response.status_code == 502


async def test_a_result_fetch_during_an_outage_is_a_502_and_caches_nothing(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], simulator: Simulator
) -> None:
    alice = mint("alice")
    created = (await create(broker, alice)).json()
    simulator.state.inject_fault("status", status=503, method="GET", path="/v2/live/*")
    failed = await broker.get(f"/v1/sessions/{created['id']}/result", headers=alice)
    assert failed.status_code == 502
    recovered = await broker.get(f"/v1/sessions/{created['id']}/result", headers=alice)
    assert recovered.status_code == 200
