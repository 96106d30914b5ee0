"""`/metrics` as a whole: exactly the series docs/operations.md lists, no `_created` series, and
the process' own collectors in each app's registry."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.datastructures import Secret

from broker.observability.metrics import Metrics
from broker.settings import Settings
from broker.web.app import create_app
from tests.broker.conftest import BrokerFactory

ROOT = Path(__file__).parents[2]
RELAY_SECRET = "whsec_" + base64.b64encode(b"metrics-test-relay-secret-0123456789").decode()
# A documented row: `| \`name\` | type | \`label\`, ... | meaning |`.
DOCUMENTED_ROW = re.compile(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \|([^|]*)\|", re.M)

# A series' exposed name, its type and its label names.
Catalogue = dict[str, tuple[str, frozenset[str]]]


def documented() -> Catalogue:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = DOCUMENTED_ROW.findall(section)
    return {name: (kind, frozenset(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def exposed(text: str) -> Catalogue:
    """Each family of an exposition, by the name it is exposed under (`_total` for counters)."""
    catalogue: Catalogue = {}
    for family in text_string_to_metric_families(text):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        catalogue[name] = (family.type, frozenset(labels))
    return catalogue


@asynccontextmanager
async def relaying_broker(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """A broker with the relay on (every series exists), and a client to scrape it with."""
    relayed = replace(
        settings, relay_url="http://127.0.0.1:9/hooks", relay_secret=Secret(RELAY_SECRET)
    )
    app = create_app(relayed)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://broker.test") as client,
    ):
        yield app, client


def count_one_of_each_label_set(metrics: Metrics) -> None:
    """A child for each labelled series, so that its label names show in the exposition."""
    metrics.observe_request("POST", "/v1/callbacks/{capability}", 204, 0.01)
    metrics.observe_upstream("GET", "/v2/live/{id}", "200", 0.01)
    metrics.count_refusal(ValueError())
    metrics.count_redis_error(ConnectionError())
    metrics.relay_failures.labels("http_503").inc()


async def test_the_documented_series_are_exactly_those_metrics_exposes(settings: Settings) -> None:
    async with relaying_broker(settings) as (app, client):
        count_one_of_each_label_set(app.state.metrics)
        response = await client.get("/metrics")
    assert response.status_code == 200
    table = documented()
    assert len(table) > 20, "the metrics table of docs/operations.md was not found"
    assert exposed(response.text) == table


async def test_no_series_is_a_created_timestamp(broker: httpx.AsyncClient) -> None:
    await broker.get("/healthz")
    text = (await broker.get("/metrics")).text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert "broker_http_requests_total" in names
    assert "broker_http_request_duration_seconds_count" in names
    assert [name for name in names if name.endswith("_created")] == []
    assert "_created " not in text and "_created{" not in text


def test_created_series_are_dropped_in_the_brokers_registry_alone() -> None:
    """prometheus_client's process-wide switch is left alone: other registries keep theirs."""
    Metrics().sessions_created.inc()
    other = CollectorRegistry()
    Counter("other_things", "Something else in the same process.", registry=other).inc()
    assert b"other_things_created " in generate_latest(other)


async def test_each_app_exports_the_process_and_runtime_collectors(
    broker_factory: BrokerFactory,
) -> None:
    # Several apps in one process: each registry has its own collectors, and none clash.
    async with broker_factory() as first, broker_factory() as second:
        scraped = [(await client.get("/metrics")).text for client in (first, second)]
    for text in scraped:
        families = exposed(text)
        assert families["process_cpu_seconds_total"] == ("counter", frozenset())
        assert families["process_resident_memory_bytes"] == ("gauge", frozenset())
        assert "version" in families["python_info"][1]
        assert families["python_gc_collections_total"] == ("counter", frozenset({"generation"}))
