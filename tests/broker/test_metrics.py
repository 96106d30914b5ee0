"""`/metrics`: after a scripted flow, the counters show exactly the requests made, and no more."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import httpx
from prometheus_client.parser import text_string_to_metric_families

from broker.settings import Settings
from broker.web.app import create_app, create_metrics_app
from tests.broker.conftest import BrokerFactory, Simulator

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def family(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: count for (sample, labels), count in samples.items() if sample == name}


async def test_the_counters_show_exactly_the_requests_of_a_scripted_flow(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], simulator: Simulator
) -> None:
    alice, bob = mint("alice"), mint("bob")
    first = (await broker.post("/v1/sessions", headers=alice, json={})).json()
    await broker.post("/v1/sessions", headers=alice, json={"sample_rate": 16000})
    await broker.get(f"/v1/sessions/{first['id']}", headers=alice)
    await broker.get(f"/v1/sessions/{first['id']}/result", headers=alice)
    await broker.get("/v1/sessions", headers=alice)
    await broker.get(f"/v1/sessions/{first['id']}", headers=bob)  # someone else's: 404
    await broker.get("/v1/sessions")  # no credential: 401
    await broker.post("/v1/sessions", headers=alice, json={"callback": True})  # 422
    await broker.get("/no/such/route")
    await broker.get("/healthz")
    await broker.get("/readyz")

    samples = await scrape(broker)

    assert family(samples, "broker_http_requests_total") == {
        (("method", "POST"), ("route", "/v1/sessions"), ("status", "201")): 2,
        (("method", "POST"), ("route", "/v1/sessions"), ("status", "422")): 1,
        (("method", "GET"), ("route", "/v1/sessions/{session_id}"), ("status", "200")): 1,
        (("method", "GET"), ("route", "/v1/sessions/{session_id}"), ("status", "404")): 1,
        (("method", "GET"), ("route", "/v1/sessions/{session_id}/result"), ("status", "200")): 1,
        (("method", "GET"), ("route", "/v1/sessions"), ("status", "200")): 1,
        (("method", "GET"), ("route", "/v1/sessions"), ("status", "401")): 1,
        (("method", "GET"), ("route", "unmatched"), ("status", "404")): 1,
        (("method", "GET"), ("route", "/healthz"), ("status", "200")): 1,
        (("method", "GET"), ("route", "/readyz"), ("status", "200")): 1,
    }
    assert (
        value(
            samples,
            "broker_http_request_duration_seconds_count",
            method="POST",
            route="/v1/sessions",
        )
        == 3
    )
    assert family(samples, "broker_refusals_total") == {
        (("reason", "not_found"),): 2,
        (("reason", "unauthorized"),): 1,
        (("reason", "invalid_fields"),): 1,
    }
    assert value(samples, "broker_sessions_created_total") == 2
    assert family(samples, "broker_upstream_requests_total") == {
        (("method", "POST"), ("outcome", "201"), ("path", "/v2/live")): 2,
        (("method", "GET"), ("outcome", "200"), ("path", "/v2/live/{id}")): 1,
    }
    assert (
        value(
            samples,
            "broker_upstream_request_duration_seconds_count",
            method="POST",
            path="/v2/live",
        )
        == 2
    )
    assert len(simulator.calls("POST", "/v2/live")) == 2

    # The scrape itself shows up in the next one, and nothing else was added.
    again = await scrape(broker)
    assert (
        value(again, "broker_http_requests_total", method="GET", route="/metrics", status="200")
        == 1
    )
    assert sum(family(again, "broker_http_requests_total").values()) == 12


async def test_no_label_carries_a_user_a_session_or_a_token(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]]
) -> None:
    alice = mint("alice@example.com")
    created = (await broker.post("/v1/sessions", headers=alice, json={})).json()
    await broker.get(f"/v1/sessions/{created['id']}", headers=alice)
    await broker.get(f"/v1/sessions/{created['id']}?token=query-token-0123456789", headers=alice)
    await broker.get("/v1/sessions/an-id-nobody-has", headers=alice)
    await broker.request("BREW", "/v1/sessions/coffee-pot")
    samples = await scrape(broker)
    token = alice["Authorization"].split()[1]
    forbidden = ("alice", created["id"], created["url"], token, "query-token", "an-id-nobody")
    for (_, labels), _count in samples.items():
        for _name, label in labels:
            assert not any(part in label for part in forbidden), label
    methods = {dict(labels).get("method") for (_, labels) in samples}
    assert "BREW" not in methods and "other" in methods


async def test_upstream_timeouts_and_redis_failures_are_counted(
    broker_factory: BrokerFactory,
    mint: Callable[[str], dict[str, str]],
    simulator: Simulator,
) -> None:
    async with broker_factory() as broker:
        simulator.state.inject_fault("timeout", method="POST", path="/v2/live", timeout_s=5)
        timed_out = await broker.post("/v1/sessions", headers=mint("alice"), json={})
        assert timed_out.status_code == 504
        samples = await scrape(broker)
    assert (
        value(
            samples,
            "broker_upstream_requests_total",
            method="POST",
            path="/v2/live",
            outcome="timeout",
        )
        == 1
    )
    assert value(samples, "broker_sessions_created_total") == 0

    async with broker_factory(redis_url="redis://127.0.0.1:1/0", redis_cluster=False) as broker:
        assert (await broker.get("/readyz")).status_code == 503
        assert (await broker.get("/v1/sessions", headers=mint("alice"))).status_code == 503
        samples = await scrape(broker)
    # /readyz, the listing, and the scrape's own counts (which still answers): the live sessions
    # and the result-fetch queue.
    assert value(samples, "broker_redis_errors_total", error="ConnectionError") == 4
    # A store outage is not the client's fault: it is not counted as a refusal.
    assert family(samples, "broker_refusals_total") == {}


async def test_two_apps_in_one_process_keep_their_own_counts(
    broker_factory: BrokerFactory,
) -> None:
    async with broker_factory() as first, broker_factory() as second:
        await first.get("/healthz")
        await first.get("/healthz")
        await second.get("/healthz")
        first_count = value(
            await scrape(first), "broker_http_requests_total",
            method="GET", route="/healthz", status="200",
        )  # fmt: skip
        second_count = value(
            await scrape(second), "broker_http_requests_total",
            method="GET", route="/healthz", status="200",
        )  # fmt: skip
    assert (first_count, second_count) == (2, 1)


async def test_with_a_metrics_port_the_main_app_does_not_serve_metrics(settings: Settings) -> None:
    app = create_app(replace(settings, metrics_port=9100))
    metrics_app = create_metrics_app(app)
    main = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
    side = httpx.AsyncClient(transport=httpx.ASGITransport(app=metrics_app), base_url="http://m")
    async with app.router.lifespan_context(app), main, side:
        assert (await main.get("/metrics")).status_code == 404
        await main.get("/healthz")
        samples = await scrape(side)
    assert (
        value(samples, "broker_http_requests_total", method="GET", route="/healthz", status="200")
        == 1
    )


async def test_the_live_sessions_gauge_counts_the_accounts_leases_at_each_scrape(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]]
) -> None:
    assert value(await scrape(broker), "broker_live_sessions") == 0
    for user in ("alice", "bob", "alice"):
        assert (await broker.post("/v1/sessions", headers=mint(user), json={})).status_code == 201
    assert value(await scrape(broker), "broker_live_sessions") == 3
