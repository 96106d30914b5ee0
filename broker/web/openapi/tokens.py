"""`POST /v1/tokens`: the app's backend mints a token for one of its users."""

from __future__ import annotations

from broker.identity.credentials import MAX_SUBJECT_LENGTH, SUBJECT_PATTERN
from broker.settings import Settings
from broker.web.openapi.operation import json_answer, operation
from broker.web.openapi.schema import JsonObject, closed, timestamp
from broker.web.openapi.security import SERVICE_KEY


def paths() -> JsonObject:
    """The token surface's paths."""
    return {
        "/v1/tokens": {
            "post": operation(
                "mintToken",
                "Mint a token for one of the app's users",
                SERVICE_KEY,
                {201: json_answer("Token")},
                (400, 401, 413, 415, 422, 429),
                body=("TokenRequest", True),
            )
        },
    }


def schemas(settings: Settings) -> JsonObject:
    """The token surface's schemas; a token lives at most BROKER_TOKEN_MAX_TTL."""
    return {
        "TokenRequest": closed(
            {
                "sub": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_SUBJECT_LENGTH,
                    "pattern": SUBJECT_PATTERN,
                },
                "ttl": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "maximum": settings.token_max_ttl_s,
                    "description": "Seconds; null or absent means BROKER_TOKEN_TTL",
                },
            },
            ("sub",),
        ),
        "Token": closed(
            {"token": {"type": "string"}, "expires_at": timestamp()}, ("token", "expires_at")
        ),
    }
