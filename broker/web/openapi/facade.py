"""`/v2/live`: Gladia's own API for its official SDKs, answered in Gladia's error envelope."""

from __future__ import annotations

from broker.policy.rules import PolicyRules
from broker.web.openapi.operation import (
    integer_query,
    json_answer,
    operation,
    session_id_parameter,
    text_answer,
)
from broker.web.openapi.schema import JsonObject, closed, schema_ref, timestamp
from broker.web.openapi.security import USER_TOKEN
from broker.web.routes.facade import MAX_OFFSET, MAX_PAGE

# Clients that can only send Gladia's key header (Pipecat's GladiaSTTService) send the token there.
CREDENTIAL_IN_KEY_HEADER = (
    "The user token goes in `Authorization: Bearer <token>` or, for clients that can only send "
    "Gladia's key header, in `X-Gladia-Key: <token>` (both at once must be the same token). "
    "A Gladia API key is refused with 401: it stays on the broker. The placeholder `unused` "
    "(the Python SDK requires some key) stands for no credential."
)


def paths(rules: PolicyRules) -> JsonObject:
    """The facade's paths; a create may name only the regions the rules allow."""
    documented = _paths(rules)
    for methods in documented.values():
        for described in methods.values():
            described["description"] = CREDENTIAL_IN_KEY_HEADER
    return documented


def _paths(rules: PolicyRules) -> JsonObject:
    return {
        "/v2/live": {
            "post": operation(
                "facadeCreate",
                "Gladia's POST /v2/live, for the official SDKs",
                USER_TOKEN,
                {201: json_answer("FacadeCreated", no_store=True)},
                (400, 401, 403, 409, 413, 415, 429, 502, 503, 504),
                body=("CreateSessionRequest", False),
                parameters=[
                    {"name": "region", "in": "query", "schema": {"enum": list(rules.regions)}}
                ],
                envelope=True,
            ),
            "get": operation(
                "facadeList",
                "Gladia's GET /v2/live: the caller's sessions, newest first",
                USER_TOKEN,
                {200: json_answer("FacadePage", no_store=True)},
                (400, 401, 429, 502, 503, 504),
                parameters=[
                    integer_query("offset", 0, MAX_OFFSET),
                    integer_query("limit", 1, MAX_PAGE),
                ],
                envelope=True,
            ),
        },
        "/v2/live/{session_id}": {
            "get": operation(
                "facadeGet",
                "Gladia's GET /v2/live/{id}, sanitised",
                USER_TOKEN,
                {200: json_answer("Result", no_store=True)},
                (401, 404, 429, 502, 503, 504),
                parameters=[session_id_parameter()],
                envelope=True,
            ),
            "delete": operation(
                "facadeDelete",
                "Gladia's DELETE /v2/live/{id}",
                USER_TOKEN,
                {202: {"description": "Deleted"}},
                (401, 403, 404, 429, 502, 503, 504),
                parameters=[session_id_parameter()],
                envelope=True,
            ),
        },
        "/v2/live/{session_id}/file": {
            "get": operation(
                "facadeFile",
                "Gladia's GET /v2/live/{id}/file: the recorded audio, streamed",
                USER_TOKEN,
                {200: text_answer("The audio", "application/octet-stream")},
                (401, 404, 429, 502, 503, 504),
                parameters=[session_id_parameter()],
                envelope=True,
            ),
        },
    }


def schemas() -> JsonObject:
    """The facade's own schemas; a session is the /v1/ `Result`."""
    return {
        "FacadeCreated": closed(
            {"id": {"type": "string"}, "created_at": timestamp(), "url": {"type": "string"}},
            ("id", "created_at", "url"),
        ),
        "FacadePage": closed(
            {
                "first": {"type": "string"},
                "current": {"type": "string"},
                "next": {"type": ["string", "null"]},
                "items": {"type": "array", "items": schema_ref("Result")},
            },
            ("first", "current", "next", "items"),
        ),
    }
