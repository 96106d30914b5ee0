"""One structured access line per request: id, route template, subject hash, status, upstream."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from broker.identity.credentials import Subject
from broker.observability.logs import JsonFormatter, RedactedLogRecord
from tests.broker.conftest import Simulator


def access_record(caplog: pytest.LogCaptureFixture, request_id: str) -> RedactedLogRecord:
    found = [
        record
        for record in caplog.records
        if record.name == "broker.access" and getattr(record, "request_id", None) == request_id
    ]
    assert len(found) == 1, f"expected one access line for {request_id}"
    assert isinstance(found[0], RedactedLogRecord), "the redaction layer made no record"
    return found[0]


async def test_a_create_logs_the_route_the_hashed_subject_and_gladias_status(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await broker.post(
        "/v1/sessions", headers={**mint("alice"), "X-Request-ID": "req-create-1"}, json={}
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "req-create-1"
    entry = json.loads(JsonFormatter().format(access_record(caplog, "req-create-1")))
    assert entry["request_id"] == "req-create-1"
    assert entry["method"] == "POST"
    assert entry["route"] == "/v1/sessions"
    assert entry["status"] == 201
    assert entry["subject"] == Subject("alice").key
    assert entry["upstream_status"] == "201"
    assert entry["client"] == "127.0.0.1"
    assert isinstance(entry["duration_ms"], float)
    assert "alice" not in json.dumps(entry)


async def test_the_line_names_the_route_template_never_the_session_id(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = mint("alice")
    created = (await broker.post("/v1/sessions", headers=alice, json={})).json()
    await broker.get(
        f"/v1/sessions/{created['id']}/result?token=t0ken-in-query",
        headers={**alice, "X-Request-ID": "req-result-1"},
    )
    record = access_record(caplog, "req-result-1")
    line = JsonFormatter().format(record)
    assert record.fields["route"] == "/v1/sessions/{session_id}/result"
    assert record.fields["upstream_status"] == "200"
    assert created["id"] not in line
    assert "t0ken-in-query" not in line


async def test_a_request_without_credentials_logs_no_subject_and_no_upstream(
    broker: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await broker.get("/v1/sessions", headers={"X-Request-ID": "req-anonymous"})
    record = access_record(caplog, "req-anonymous")
    assert record.fields["status"] == 401
    assert record.fields["subject"] is None
    assert record.fields["upstream_status"] is None


@pytest.mark.parametrize("offered", ["", "has spaces", "x" * 65, 'quote"d', "new\nline"])
async def test_an_unusable_request_id_is_replaced_by_a_fresh_one(
    broker: httpx.AsyncClient, offered: str
) -> None:
    response = await broker.get("/healthz", headers={b"X-Request-ID": offered.encode()})
    assert response.headers["x-request-id"] != offered
    assert len(response.headers["x-request-id"]) == 32


async def test_every_record_logged_during_a_request_carries_its_id(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    simulator: Simulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator.state.inject_fault("status", method="POST", path="/v2/live", status=500)
    response = await broker.post(
        "/v1/sessions", headers={**mint("alice"), "X-Request-ID": "req-upstream-500"}, json={}
    )
    assert response.status_code == 502
    upstream_lines = [r for r in caplog.records if r.name == "broker.gladia"]
    assert upstream_lines
    assert {getattr(r, "request_id", None) for r in upstream_lines} == {"req-upstream-500"}
    assert access_record(caplog, "req-upstream-500").fields["upstream_status"] == "500"
