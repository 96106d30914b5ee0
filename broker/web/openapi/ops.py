"""The operators' routes: metrics, liveness and readiness."""

from __future__ import annotations

from broker.web.openapi.operation import json_answer, operation, text_answer
from broker.web.openapi.schema import JSON, JsonObject, closed, schema_ref
from broker.web.openapi.security import PUBLIC


def paths() -> JsonObject:
    """The ops paths, all without a credential."""
    return {
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics (on BROKER_METRICS_PORT when set)",
                PUBLIC,
                {200: text_answer("OK", "text/plain")},
                (),
            )
        },
        "/healthz": {
            "get": operation(
                "health", "The process is alive", PUBLIC, {200: json_answer("Health")}, ()
            )
        },
        "/readyz": {
            "get": operation(
                "readiness",
                "Redis answers",
                PUBLIC,
                {
                    200: json_answer("Readiness"),
                    503: {
                        "description": "Redis does not answer",
                        "content": {JSON: {"schema": schema_ref("Readiness")}},
                    },
                },
                (),
            )
        },
    }


def schemas() -> JsonObject:
    """The ops schemas."""
    return {
        "Health": closed({"status": {"const": "ok"}}, ("status",)),
        "Readiness": closed(
            {"status": {"enum": ["ready", "unavailable"]}, "redis": {"enum": ["up", "down"]}},
            ("status", "redis"),
        ),
    }
