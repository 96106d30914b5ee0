"""Metric labels come from closed sets: methods, reasons, route templates, delivery kinds."""

import pytest
from prometheus_client import generate_latest

from broker.errors import BrokerError, InvalidFields, PayloadTooLarge
from broker.observability import metrics as metrics_module
from broker.observability.metrics import Metrics, method_label, reason_label


def test_an_unknown_method_is_labelled_other() -> None:
    assert method_label("GET") == "GET"
    assert method_label("BREW") == "other"
    assert method_label("get") == "other"


def test_a_refusal_reason_is_the_errors_own_reason_or_its_class() -> None:
    assert reason_label(PayloadTooLarge()) == "payload_too_large"
    assert reason_label(InvalidFields()) == "invalid_fields"

    class Limited(BrokerError):
        status_code = 429

        def __init__(self, reason: str) -> None:
            super().__init__("Slow down", retry_after_s=3)
            self.reason = reason

    assert reason_label(Limited("subject_live")) == "subject_live"


def test_deliveries_from_gladia_are_counted_by_kind_from_their_route() -> None:
    metrics = Metrics()
    metrics.observe_request("POST", "/v1/callbacks/{capability}", 204, 0.01)
    metrics.observe_request("POST", "/v1/callbacks/{capability}", 404, 0.01)
    metrics.observe_request("POST", "/v1/webhooks/gladia", 401, 0.01)
    metrics.observe_request("POST", "/v1/sessions", 201, 0.01)
    value = metrics.registry.get_sample_value
    assert value("broker_callbacks_total", {"kind": "callback", "status": "204"}) == 1
    assert value("broker_callbacks_total", {"kind": "callback", "status": "404"}) == 1
    assert value("broker_callbacks_total", {"kind": "webhook", "status": "401"}) == 1
    assert b"/v1/sessions" not in b"".join(
        line for line in generate_latest(metrics.registry).splitlines() if b"callbacks" in line
    )


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.sessions_created.inc()
    assert first.registry.get_sample_value("broker_sessions_created_total") == 1
    assert second.registry.get_sample_value("broker_sessions_created_total") == 0


def test_repeated_requests_count_on_the_same_labels_as_the_first() -> None:
    metrics = Metrics()
    for status in (200, 200, 404, 200):
        metrics.observe_request("GET", "/v1/sessions/{session_id}", status, 0.003)
    metrics.observe_request("BREW", "/v1/sessions/{session_id}", 200, 0.003)
    value = metrics.registry.get_sample_value
    lookup = {"method": "GET", "route": "/v1/sessions/{session_id}"}
    assert value("broker_http_requests_total", {**lookup, "status": "200"}) == 3
    assert value("broker_http_requests_total", {**lookup, "status": "404"}) == 1
    assert value("broker_http_requests_total", {**lookup, "method": "other", "status": "200"}) == 1
    assert value("broker_http_request_duration_seconds_count", lookup) == 4
    assert value("broker_http_request_duration_seconds_bucket", {**lookup, "le": "0.005"}) == 4


def test_the_kept_label_children_are_bounded_and_requests_beyond_still_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "REQUEST_CHILDREN_MAX", 2)
    metrics = Metrics()
    statuses = (200, 201, 204, 404, 500)
    for _ in range(2):
        for status in statuses:
            metrics.observe_request("POST", "/v1/callbacks/{capability}", status, 0.01)
    assert len(metrics._request_children) == 2
    for status in statuses:
        labels = {"kind": "callback", "status": str(status)}
        assert metrics.registry.get_sample_value("broker_callbacks_total", labels) == 2
