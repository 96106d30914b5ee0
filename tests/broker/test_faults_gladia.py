"""Gladia slow, failing, refusing or cut off: bounded latency, the documented mapping, one
billable create at most, and nothing of Gladia's own words or state leaked to the client.

(The status mapping itself is in test_upstream_faults.py; this file adds the timing bounds,
concurrency and leak checks around it.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from broker.settings import Settings
from tests.broker.conftest import BrokerFactory, Simulator, running_broker
from tests.support.servers import free_port, serve_in_thread

Headers = Callable[[str], dict[str, str]]
LEAKY_TEXT = "stack trace at db-7.internal password=hunter2"
LEAKY_URL_TEXT = "callback_config.url wss://internal.gladia/v2?token=zz is invalid"


async def create(broker: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await broker.post("/v1/sessions", headers=headers, json={})


@pytest.fixture
def dripping_gladia() -> Iterator[str]:
    """A Gladia that answers every call, one byte every 0.2 s: the read timeout never fires."""

    async def drip(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" "
                await asyncio.sleep(0.2)

        return StreamingResponse(body(), status_code=201, media_type="application/json")

    app = Starlette(routes=[Route("/v2/live", drip, methods=["POST"])])
    with serve_in_thread(app) as base_url:
        yield base_url


async def test_a_gladia_that_drips_its_answer_is_cut_off_at_the_total_deadline(
    broker_factory: BrokerFactory, settings: Settings, mint: Headers, dripping_gladia: str
) -> None:
    async with broker_factory(gladia_api_url=dripping_gladia) as broker:
        started = time.monotonic()
        response = await create(broker, mint("alice"))
        elapsed_s = time.monotonic() - started
    assert response.status_code == 504
    assert settings.gladia_total_timeout_s - 0.1 < elapsed_s < settings.gladia_total_timeout_s + 1.0


async def test_a_silent_gladia_is_cut_off_at_the_read_timeout(
    broker: httpx.AsyncClient, settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    simulator.state.inject_fault("timeout", method="POST", path="/v2/live", timeout_s=10)
    started = time.monotonic()
    response = await create(broker, mint("alice"))
    elapsed_s = time.monotonic() - started
    assert response.status_code == 504
    assert elapsed_s < settings.gladia_read_timeout_s + 1.0


async def test_a_slow_gladia_does_not_hold_up_reconnects(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    session_id = (await create(broker, alice)).json()["id"]
    simulator.state.inject_fault("timeout", method="POST", path="/v2/live", count=10, timeout_s=10)
    stuck = [asyncio.create_task(create(broker, mint(f"user-{n}"))) for n in range(10)]
    await asyncio.sleep(0.1)
    started = time.monotonic()
    found = await broker.get(f"/v1/sessions/{session_id}", headers=alice)
    assert found.status_code == 200
    assert time.monotonic() - started < 0.5
    assert {r.status_code for r in await asyncio.gather(*stuck)} == {504}


async def test_reconnects_keep_working_while_gladia_is_unreachable(
    broker: httpx.AsyncClient, broker_factory: BrokerFactory, mint: Headers
) -> None:
    alice = mint("alice")
    created = (await create(broker, alice)).json()
    async with broker_factory(gladia_api_url=f"http://127.0.0.1:{free_port()}") as cut_off:
        found = await cut_off.get(f"/v1/sessions/{created['id']}", headers=alice)
    assert found.status_code == 200
    assert found.json()["url"] == created["url"]


@pytest.mark.parametrize("status", [401, 403, 429, 500, 502, 503])
async def test_gladias_own_words_never_reach_the_client(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, status: int
) -> None:
    simulator.state.inject_fault(
        "status", status=status, method="POST", path="/v2/live", message=LEAKY_TEXT
    )
    response = await create(broker, mint("alice"))
    assert response.status_code in (502, 503)
    for fragment in ("hunter2", "db-7.internal", "stack trace"):
        assert fragment not in response.text


async def test_a_gladia_validation_message_quoting_a_url_is_not_passed_on(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    # Field messages of a 400 are passed on so the user can fix the field, unless they quote
    # a URL (which could be the callback capability).
    simulator.state.inject_fault(
        "status", status=400, method="POST", path="/v2/live", message=LEAKY_URL_TEXT
    )
    response = await create(broker, mint("alice"))
    assert response.status_code == 400
    assert "internal.gladia" not in response.text and "token=zz" not in response.text


async def test_a_burst_of_gladia_429s_is_a_burst_of_503s_with_one_call_each(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    simulator.state.inject_fault(
        "status", status=429, retry_after=9, method="POST", path="/v2/live", count=20
    )
    responses = await asyncio.gather(*(create(broker, mint(f"user-{n}")) for n in range(20)))
    assert {r.status_code for r in responses} == {503}
    assert {r.headers["retry-after"] for r in responses} == {"9"}
    assert len(simulator.calls()) == 20, "a refused create is never retried"


async def test_a_timeout_after_gladia_created_leaves_no_session_behind_for_the_user(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    simulator.state.inject_fault(
        "timeout_after_create", method="POST", path="/v2/live", timeout_s=5
    )
    response = await create(broker, alice)
    assert response.status_code == 504
    [created_upstream] = simulator.state.sessions
    assert created_upstream not in response.text
    listing = await broker.get("/v1/sessions", headers=alice)
    assert listing.json()["items"] == []
    # The user's retry is a new create: one more call, never a replay by the broker itself.
    assert (await create(broker, alice)).status_code == 201
    assert len(simulator.calls()) == 2


async def test_a_connection_dropped_mid_answer_is_a_502_and_no_record(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    simulator.state.inject_fault("drop", method="POST", path="/v2/live")
    response = await create(broker, alice)
    assert response.status_code == 502
    assert len(simulator.calls()) == 1
    assert (await broker.get("/v1/sessions", headers=alice)).json()["items"] == []


async def test_a_gladia_that_is_slow_but_within_the_deadline_is_waited_for_under_load(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    simulator.state.inject_fault("delay", delay_s=0.3, method="POST", path="/v2/live", count=20)
    async with running_broker(replace(settings, gladia_max_connections=100)) as broker:
        started = time.monotonic()
        responses = await asyncio.gather(*(create(broker, mint(f"user-{n}")) for n in range(20)))
        elapsed_s = time.monotonic() - started
    assert {r.status_code for r in responses} == {201}
    # Concurrent, not queued one behind the other: 20 x 0.3 s would be 6 s.
    assert elapsed_s < 2.0
