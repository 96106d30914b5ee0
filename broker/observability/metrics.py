"""Prometheus metrics of one app, in the app's own registry.

Labels come from closed sets only: route templates (never a raw path), HTTP methods, status
codes, Gladia path templates and error class names. No label can carry a user id, a session id,
a token or a capability, and no label can grow without bound.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from redis.exceptions import RedisError

logger = logging.getLogger("broker.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# From a cached answer (milliseconds) to a create at Gladia's total deadline (12 s).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Deliveries from Gladia, told apart by the route template they arrive on.
CALLBACK_ROUTES = {"/v1/callbacks/": "callback", "/v1/webhooks/": "webhook"}
# Each gauge read from Redis at a scrape gets this long; the scrape answers either way.
SAMPLE_TIMEOUT_S = 1.0
# The request metrics' labelled children are kept per (method, route, status): methods and route
# templates are closed sets and statuses are three digits, so a few hundred at most are ever
# seen; the bound only keeps a caller passing open-ended labels from growing the cache.
REQUEST_CHILDREN_MAX = 1024

# Where a gauge sampled at each scrape reads its value (a Redis count).
GaugeSource = Callable[[], Awaitable[int]]
# A sampled gauge, what it counts (for the warning when it cannot), and its source.
_SampledGauge = tuple[Gauge, str, GaugeSource]
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


class Metrics:
    """Every metric the broker exports; one instance per app, so tests can build several."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self._sampled: dict[str, _SampledGauge] = {}
        self._request_children: dict[tuple[str, str, int], _RequestChildren] = {}

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
        self.upstream_requests.labels(method_label(method), path, outcome).inc()
        self.upstream_seconds.labels(method_label(method), path).observe(duration_s)

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

    def _track(self, name: str, documentation: str, counts: str, source: GaugeSource) -> None:
        """A gauge set from `source` at each scrape; tracking it again replaces its source."""
        sampled = self._sampled.get(name)
        gauge = sampled[0] if sampled else Gauge(name, documentation, registry=self.registry)
        self._sampled[name] = (gauge, counts, source)

    async def render(self) -> bytes:
        """The text exposition format, with the sampled gauges brought up to date first."""
        for gauge, counts, source in self._sampled.values():
            try:
                async with asyncio.timeout(SAMPLE_TIMEOUT_S):
                    gauge.set(await source())
            except (TimeoutError, RedisError, OSError) as exc:  # The scrape still answers.
                logger.warning("%s could not be counted: %s", counts, type(exc).__name__)
                self.count_redis_error(exc)
        return generate_latest(self.registry)
