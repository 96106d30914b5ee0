"""Prometheus metrics of one app, in the app's own registry.

Labels come from closed sets only: route templates (never a raw path), HTTP methods, status
codes, Gladia path templates, job queue names and error class names. No label can carry a user
id, a session id, a token or a capability, and no label can grow without bound.

Names follow Prometheus' conventions: counters end in `_total` (prometheus_client adds it),
durations in `_seconds`, sizes in `_bytes`. docs/operations.md lists every series, and a test
holds that list to what `/metrics` exposes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from redis.exceptions import RedisError

logger = logging.getLogger("broker.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# From a cached answer (milliseconds) to a create at Gladia's total deadline (12 s).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Deliveries from Gladia, told apart by the route template they arrive on.
CALLBACK_ROUTES = {"/v1/callbacks/": "callback", "/v1/webhooks/": "webhook"}
# The gauges read from Redis at a scrape are read together, each for this long at most; the
# scrape answers either way.
SAMPLE_TIMEOUT_S = 1.0
# The series prometheus_client adds to each counter and histogram (their creation time).
_CREATED_TYPES = frozenset({"counter", "histogram", "summary"})
# The request metrics' labelled children are kept per (method, route, status): methods and route
# templates are closed sets and statuses are three digits, so a few hundred at most are ever
# seen; the bound only keeps a caller passing open-ended labels from growing the cache.
REQUEST_CHILDREN_MAX = 1024

# Where a gauge sampled at each scrape reads its value (a Redis count).
GaugeSource = Callable[[], Awaitable[int]]
# What a sampled gauge counts (for the warning when it cannot), and how it reads and sets it.
_Sampler = tuple[str, Callable[[], Awaitable[None]]]
# The labelled children a request counts in: its request counter, its duration histogram and,
# for a delivery from Gladia, its callback counters (`.labels` answers the metric's own type).
_RequestChildren = tuple[Counter, Histogram, tuple[Counter, ...]]


def method_label(method: str) -> str:
    """The request method, or `other`: a client can send any token as a method."""
    return method if method in METHODS else "other"


def reason_label(error: Exception) -> str:
    """A refusal's reason: the error's own `reason`, else its class name in snake case."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


@dataclass(frozen=True)
class QueueCounts:
    """One job queue, as Redis holds it: its members waiting, and those backing off among them."""

    # Due now or backing off after a failure; parked members (dead letters) are counted apart.
    waiting: int
    retrying: int


# Where a job queue's gauges read their values at each scrape.
QueueSource = Callable[[], Awaitable[QueueCounts]]


class _Registry(CollectorRegistry):
    """The app's registry, without the `<name>_created` series of its counters and histograms.

    They would double the series of every labelled counter and say only when this process first
    counted a label. prometheus_client's own switches (`disable_created_metrics()`, the
    `PROMETHEUS_DISABLE_CREATED_SERIES` variable) are process-wide, so they are left alone.
    """

    def collect(self) -> Iterable[Metric]:
        for family in super().collect():
            if family.type in _CREATED_TYPES:
                created = f"{family.name}_created"
                family.samples = [sample for sample in family.samples if sample.name != created]
            yield family


class Metrics:
    """Every metric the broker exports; one instance per app, so tests can build several."""

    def __init__(self) -> None:
        self.registry = _Registry(auto_describe=True)
        # The process' CPU, memory and file descriptors, the interpreter, its garbage collector.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "broker_http_requests",
            "Requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "broker_http_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.upstream_requests = Counter(
            "broker_upstream_requests",
            "Calls to Gladia, by method, path template and outcome (status code, timeout, error).",
            ("method", "path", "outcome"),
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "broker_upstream_request_duration_seconds",
            "Time a call to Gladia took, by method and path template.",
            ("method", "path"),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.sessions_created = Counter(
            "broker_sessions_created",
            "Live sessions Gladia created for the broker (each one is billed).",
            registry=self.registry,
        )
        self.refusals = Counter(
            "broker_refusals",
            "Requests refused with a 4xx, by reason.",
            ("reason",),
            registry=self.registry,
        )
        self.callbacks = Counter(
            "broker_callbacks",
            "Deliveries from Gladia, by kind (callback, webhook) and the status answered.",
            ("kind", "status"),
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "broker_redis_errors",
            "Redis operations that failed, by error class.",
            ("error",),
            registry=self.registry,
        )
        self.relay_failures = Counter(
            "broker_relay_delivery_failures",
            "Relay deliveries the app's backend did not take, by error class or http_<status>.",
            ("error",),
            registry=self.registry,
        )
        self.relay_dead_letters = Counter(
            "broker_relay_dead_letters",
            "Relay deliveries given up on (BROKER_RELAY_MAX_ATTEMPTS or _MAX_AGE_S) and parked.",
            registry=self.registry,
        )
        self.usage_audio_seconds = Counter(
            "broker_usage_audio_seconds",
            "Audio seconds of finished sessions, times their channels, as Gladia bills them.",
            registry=self.registry,
        )
        self._gauges: dict[str, Gauge] = {}
        self._sampled: dict[str, _Sampler] = {}
        self._request_children: dict[tuple[str, str, int], _RequestChildren] = {}
        self._upstream_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        method = method_label(method)
        children = self._request_children.get((method, route, status))
        if children is None:
            children = self._children_of_request(method, route, status)
        requests, seconds, deliveries = children
        requests.inc()
        seconds.observe(duration_s)
        for delivery in deliveries:
            delivery.inc()

    def _children_of_request(self, method: str, route: str, status: int) -> _RequestChildren:
        """The labelled children one request counts in (`.labels` is most of a request's cost)."""
        children = (
            self.requests.labels(method, route, str(status)),
            self.request_seconds.labels(method, route),
            tuple(
                self.callbacks.labels(kind, str(status))
                for prefix, kind in CALLBACK_ROUTES.items()
                if route.startswith(prefix)
            ),
        )
        if len(self._request_children) < REQUEST_CHILDREN_MAX:
            self._request_children[method, route, status] = children
        return children

    def observe_upstream(self, method: str, path: str, outcome: str, duration_s: float) -> None:
        children = self._upstream_children.get((method, path, outcome))
        if children is None:
            label = method_label(method)
            children = (
                self.upstream_requests.labels(label, path, outcome),
                self.upstream_seconds.labels(label, path),
            )
            if len(self._upstream_children) < REQUEST_CHILDREN_MAX:
                self._upstream_children[method, path, outcome] = children
        requests, seconds = children
        requests.inc()
        seconds.observe(duration_s)

    def count_refusal(self, error: Exception) -> None:
        self.refusals.labels(reason_label(error)).inc()

    def count_redis_error(self, error: Exception) -> None:
        self.redis_errors.labels(type(error).__name__).inc()

    def track_live_sessions(self, source: GaugeSource) -> None:
        """Export `broker_live_sessions`, read from `source` (account-wide) at each scrape."""
        self._track(
            "broker_live_sessions",
            "Live sessions open for the whole account, as Redis counts them.",
            "live sessions",
            source,
        )

    def track_relay_dead_letters(self, source: GaugeSource) -> None:
        """Export `broker_relay_dead_letters_waiting`, read from `source` at each scrape."""
        self._track(
            "broker_relay_dead_letters_waiting",
            "Relay dead letters waiting for a replay (every instance's), as Redis counts them.",
            "relay dead letters",
            source,
        )

    def track_job_queue(self, queue: str, source: QueueSource) -> None:
        """Export `broker_job_queue_depth` and `_retrying` for `queue`, read at each scrape."""
        depth = self._gauge(
            "broker_job_queue_depth",
            "Work waiting on a job queue (every instance's): due now or backing off, not parked.",
            ("queue",),
        ).labels(queue)
        retrying = self._gauge(
            "broker_job_queue_retrying",
            "Work on a job queue backing off after a failure (every instance's), not parked.",
            ("queue",),
        ).labels(queue)

        async def sample() -> None:
            counts = await source()
            depth.set(counts.waiting)
            retrying.set(counts.retrying)

        self._sampled[f"broker_job_queue:{queue}"] = (f"the {queue} job queue", sample)

    def track_open_streams(self, count: Callable[[], int]) -> None:
        """Export `broker_sse_streams_open`, this instance's own count, read at each scrape."""
        gauge = self._gauge(
            "broker_sse_streams_open",
            "Event streams (SSE) this instance holds open (BROKER_SSE_MAX_STREAMS at most).",
        )
        gauge.set_function(count)

    def _gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        """The gauge of that name, made at its first use (a gauge is exported once tracked)."""
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = Gauge(name, documentation, labels, registry=self.registry)
            self._gauges[name] = gauge
        return gauge

    def _track(self, name: str, documentation: str, counts: str, source: GaugeSource) -> None:
        """A gauge set from `source` at each scrape; tracking it again replaces its source."""
        gauge = self._gauge(name, documentation)

        async def sample() -> None:
            gauge.set(await source())

        self._sampled[name] = (counts, sample)

    async def render(self) -> bytes:
        """The text exposition format, with the sampled gauges brought up to date first."""
        await asyncio.gather(
            *(self._sample(counts, read) for counts, read in self._sampled.values())
        )
        return generate_latest(self.registry)

    async def _sample(self, counts: str, read: Callable[[], Awaitable[None]]) -> None:
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT_S):
                await read()
        except (TimeoutError, RedisError, OSError) as exc:  # The scrape still answers.
            logger.warning("%s could not be counted: %s", counts, type(exc).__name__)
            self.count_redis_error(exc)
