"""The read budget (`BROKER_READS_PER_MINUTE`): one per user, in Redis, shared by instances."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx

from broker.settings import Settings
from broker.web.app import create_app
from tests.broker.conftest import Simulator
from tests.broker.test_metrics import family, parse

Headers = Callable[[str], dict[str, str]]


@asynccontextmanager
async def instance(settings: Settings, reads_per_minute: int) -> AsyncIterator[httpx.AsyncClient]:
    """One broker app, its lifespan running, with the read budget given."""
    app = create_app(replace(settings, reads_per_minute=reads_per_minute))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://broker.test"
        ) as client,
    ):
        yield client


async def create(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/v1/sessions", headers=headers, json={})
    assert response.status_code == 201
    session_id: str = response.json()["id"]
    return session_id


def gladia_reads(simulator: Simulator) -> int:
    return sum(
        1
        for call in simulator.state.calls
        if call.method == "GET" and call.path.startswith("/v2/live/")
    )


async def test_the_budget_holds_across_two_instances_and_the_429_names_it(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    alice, bob = mint("alice"), mint("bob")
    async with instance(settings, 4) as first, instance(settings, 4) as second:
        session_id = await create(first, alice)
        answered = [
            await first.get(f"/v1/sessions/{session_id}/result", headers=alice),
            await second.get(f"/v1/sessions/{session_id}/events", headers=alice),
            await second.get("/v1/sessions", headers=alice),
            await first.get(f"/v2/live/{session_id}", headers=alice),
        ]
        assert [response.status_code for response in answered] == [200] * 4
        refused = await second.get(f"/v1/sessions/{session_id}/result", headers=alice)
        refused_facade = await first.get(f"/v2/live/{session_id}", headers=alice)
        assert (await second.get("/v1/sessions", headers=bob)).status_code == 200
        samples = parse((await second.get("/metrics")).text)

    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"].startswith("Too many reads")
    assert 50 <= int(refused.headers["retry-after"]) <= 60
    # The facade answers in Gladia's envelope, with the same limit named.
    assert refused_facade.status_code == 429
    assert refused_facade.json()["statusCode"] == 429
    assert refused_facade.json()["message"].startswith("Too many reads")
    assert 50 <= int(refused_facade.headers["retry-after"]) <= 60
    assert family(samples, "broker_refusals_total") == {(("reason", "reads_per_minute"),): 1}
    # Gladia was asked for the two results read, not for the refused ones.
    assert gladia_reads(simulator) == 2


async def test_reconnect_lookups_are_never_counted(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with instance(settings, 1) as broker:
        session_id = await create(broker, alice)
        for _ in range(20):
            lookup = await broker.get(f"/v1/sessions/{session_id}", headers=alice)
            assert lookup.status_code == 200
        assert (await broker.get("/v1/sessions", headers=alice)).status_code == 200
        assert (await broker.get("/v1/sessions", headers=alice)).status_code == 429
        # Over budget for reads, the user can still reconnect.
        reconnect = await broker.get(f"/v1/sessions/{session_id}", headers=alice)
        assert reconnect.status_code == 200
        assert reconnect.json()["url"].startswith("ws")


async def test_the_facade_list_costs_one_read_per_session_it_asks_gladia_about(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with instance(settings, 5) as broker:
        session_ids = [await create(broker, alice) for _ in range(3)]
        listed = await broker.get("/v2/live", headers=alice)
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == 3
        assert gladia_reads(simulator) == 3
        # 3 spent: another page of 3 does not fit in 5, and Gladia is not asked.
        refused = await broker.get("/v2/live", headers=alice)
        assert gladia_reads(simulator) == 3
        # What is left is spent one read at a time.
        singles = [
            (await broker.get(f"/v2/live/{session_ids[0]}", headers=alice)).status_code
            for _ in range(3)
        ]
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("Too many reads")
    assert int(refused.headers["retry-after"]) >= 1
    assert singles == [200, 200, 429]


async def test_an_empty_facade_list_costs_one_read(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with instance(settings, 2) as broker:
        statuses = [(await broker.get("/v2/live", headers=alice)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
