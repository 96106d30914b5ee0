"""`/v1/sessions`: create a live session, list the caller's, find one again, delete it."""

from __future__ import annotations

from broker.web.openapi.operation import (
    integer_query,
    json_answer,
    operation,
    pattern_query,
    session_id_parameter,
)
from broker.web.openapi.schema import JsonObject, closed, timestamp
from broker.web.openapi.security import USER_TOKEN
from broker.web.routes.sessions import MAX_PAGE

# A cursor returned by GET /v1/sessions: `<score>:<session id>`.
CURSOR_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,20})?:.+$"
LISTED_FIELDS = ("id", "status", "created_at", "expires_at", "messages_config")


def paths() -> JsonObject:
    """The session surface's paths (its events are in openapi/events.py)."""
    return {
        "/v1/sessions": {
            "post": operation(
                "createSession",
                "Create a live session; stream audio to the returned url",
                USER_TOKEN,
                {201: json_answer("CreatedSession", no_store=True)},
                (400, 401, 403, 409, 413, 415, 422, 429, 502, 503, 504),
                body=("CreateSessionRequest", False),
            ),
            "get": operation(
                "listSessions",
                "The caller's sessions, newest first",
                USER_TOKEN,
                {200: json_answer("SessionPage", no_store=True)},
                (400, 401, 429, 503),
                parameters=[
                    integer_query("limit", 1, MAX_PAGE),
                    pattern_query("cursor", CURSOR_PATTERN),
                ],
            ),
        },
        "/v1/sessions/{session_id}": {
            "get": operation(
                "getSession",
                "A session, and its url while it can still be used (reconnect)",
                USER_TOKEN,
                {200: json_answer("Session", no_store=True)},
                (401, 404, 429, 503),
                parameters=[session_id_parameter()],
            ),
            "delete": operation(
                "deleteSession",
                "Delete a finished session at Gladia and here",
                USER_TOKEN,
                {204: {"description": "Deleted"}},
                (401, 404, 409, 429, 502, 503, 504),
                parameters=[session_id_parameter()],
            ),
        },
        "/v1/sessions/{session_id}/result": {
            "get": operation(
                "getSessionResult",
                "Gladia's result without the callback URL or broker metadata",
                USER_TOKEN,
                {200: json_answer("Result", no_store=True)},
                (401, 404, 429, 502, 503, 504),
                parameters=[session_id_parameter()],
            ),
        },
    }


def schemas() -> JsonObject:
    """The session surface's schemas (its request body is in openapi/create_request.py)."""
    created = _session_fields()
    listed = {name: schema for name, schema in created.items() if name != "url"}
    return {
        "CreatedSession": closed(
            created, ("id", "url", "created_at", "expires_at", "messages_config")
        ),
        "Session": closed({**created, "status": {"type": "string"}}, LISTED_FIELDS),
        "SessionPage": closed(
            {
                "items": {
                    "type": "array",
                    "items": closed(listed | {"status": {"type": "string"}}, LISTED_FIELDS),
                },
                "next_cursor": {"type": ["string", "null"]},
            },
            ("items", "next_cursor"),
        ),
        "Result": {
            "type": "object",
            "description": "Gladia's GET /v2/live/{id}, without callback_config; its "
            "custom_metadata is the client's own part only",
        },
    }


def _session_fields() -> JsonObject:
    return {
        "id": {"type": "string"},
        "url": {"type": "string", "description": "The wss URL to stream to; a credential"},
        "created_at": timestamp(),
        "expires_at": timestamp(),
        "messages_config": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "client_ref": {
            "type": "string",
            "description": "The app's own reference, from the token that created the session",
        },
    }
