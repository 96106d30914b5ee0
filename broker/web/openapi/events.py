"""`GET /v1/sessions/{id}/events`: a session's events for its owner, as JSON pages or SSE."""

from __future__ import annotations

from broker.web.openapi.operation import (
    integer_query,
    operation,
    pattern_query,
    session_id_parameter,
)
from broker.web.openapi.schema import JSON, JsonObject, closed, schema_ref
from broker.web.openapi.security import USER_TOKEN
from broker.web.routes.events import MAX_PAGE

# A Redis stream id, as broker/web/routes/events.py checks `after` and Last-Event-ID.
EVENT_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"


def paths() -> JsonObject:
    """The event surface's paths."""
    return {
        "/v1/sessions/{session_id}/events": {
            "get": operation(
                "getSessionEvents",
                "The session's events from Gladia, oldest first; SSE with "
                "Accept: text/event-stream",
                USER_TOKEN,
                {
                    200: {
                        "description": "OK",
                        "content": {
                            JSON: {"schema": schema_ref("EventPage")},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    }
                },
                (400, 401, 404, 429, 503),
                parameters=[
                    session_id_parameter(),
                    pattern_query("after", EVENT_ID_PATTERN),
                    integer_query("limit", 1, MAX_PAGE),
                ],
            ),
        },
    }


def schemas() -> JsonObject:
    """The event surface's schemas."""
    event = closed(
        {
            "id": {"type": "string"},
            "event": {"type": "string"},
            "source": {"type": "string"},
            "received_at": {"type": "string"},
            "payload": {},
        },
        ("id", "event", "source", "received_at", "payload"),
    )
    return {
        "EventPage": closed(
            {
                "items": {"type": "array", "items": event},
                "next_cursor": {"type": "string"},
                "ended": {"type": "boolean"},
            },
            ("items", "next_cursor", "ended"),
        ),
    }
