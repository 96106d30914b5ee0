"""`/v1/usage`: a user's audio seconds per UTC day, for the user or the app's backend."""

from __future__ import annotations

from broker.identity.credentials import MAX_SUBJECT_LENGTH, SUBJECT_PATTERN
from broker.policy.usage import MAX_DAYS
from broker.web.openapi.operation import json_answer, operation
from broker.web.openapi.schema import JsonObject, closed
from broker.web.openapi.security import SERVICE_KEY, USER_TOKEN, Security
from broker.web.routes.usage import DAY_PATTERN

# A user reads its own usage; the app's backend anyone's, named by `sub`.
USER_OR_SERVICE: Security = [*USER_TOKEN, *SERVICE_KEY]


def _day_query(name: str, description: str) -> JsonObject:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": "string", "format": "date", "pattern": DAY_PATTERN},
    }


def paths() -> JsonObject:
    """The usage surface's paths."""
    return {
        "/v1/usage": {
            "get": operation(
                "getUsage",
                "Audio seconds (times channels) of a user's finished sessions, per UTC day",
                USER_OR_SERVICE,
                {200: json_answer("Usage", no_store=True)},
                (400, 401, 403, 422, 429, 503),
                parameters=[
                    {
                        "name": "sub",
                        "in": "query",
                        "description": "The user, with a service key (required then); a user "
                        "token may name only itself",
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_SUBJECT_LENGTH,
                            "pattern": SUBJECT_PATTERN,
                        },
                    },
                    _day_query("from", f"First day (UTC); default `to`; at most {MAX_DAYS} days"),
                    _day_query("to", "Last day (UTC), included; default today"),
                ],
            )
        },
    }


def schemas() -> JsonObject:
    """The usage surface's schemas."""
    day = closed(
        {
            "day": {"type": "string", "format": "date"},
            "seconds": {"type": "number", "minimum": 0},
            "sessions": {"type": "integer", "minimum": 0},
            "by_client_ref": {
                "type": "object",
                "description": "Seconds per client_ref of the tokens that created the sessions",
                "additionalProperties": {"type": "number", "minimum": 0},
            },
        },
        ("day", "seconds", "sessions", "by_client_ref"),
    )
    return {
        "Usage": closed(
            {
                "subject": {"type": "string", "description": "The `sub` asked for, if any"},
                "days": {"type": "array", "items": day, "maxItems": MAX_DAYS},
                "total_seconds": {"type": "number", "minimum": 0},
            },
            ("days", "total_seconds"),
        ),
    }
