"""Tokens: the app's backend mints them for its users, with bindings, and revokes them."""

from __future__ import annotations

from broker.identity.credentials import MAX_SUBJECT_LENGTH, SUBJECT_PATTERN
from broker.identity.grants import (
    MAX_CLIENT_REF_LENGTH,
    MAX_PRESETS,
    MAX_SESSIONS_BOUND,
    TOKEN_ID_PATTERN,
)
from broker.policy.rules import rules_from_settings
from broker.settings import GLADIA_MAX_SESSION_S, Settings
from broker.web.openapi.operation import json_answer, operation
from broker.web.openapi.schema import JsonObject, closed, timestamp
from broker.web.openapi.security import SERVICE_KEY, USER_TOKEN, Security

# No control characters, as the broker checks client_ref.
CLIENT_REF_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
# A subject in a path: the subject pattern without `/`, which a path segment cannot hold.
PATH_SUBJECT_PATTERN = SUBJECT_PATTERN.replace(r"\x9f]", r"\x9f/]")
_PATH_SUBJECT = {"minLength": 1, "maxLength": MAX_SUBJECT_LENGTH, "pattern": PATH_SUBJECT_PATTERN}
# Either credential: the service key revokes any token, a user token only itself.
SERVICE_KEY_OR_USER_TOKEN: Security = [*SERVICE_KEY, *USER_TOKEN]


def paths() -> JsonObject:
    """The token surface's paths."""
    return {
        "/v1/tokens": {
            "post": operation(
                "mintToken",
                "Mint a token for one of the app's users, with optional bindings",
                SERVICE_KEY,
                {201: json_answer("Token", no_store=True)},
                (400, 401, 413, 415, 422, 429),
                body=("TokenRequest", True),
            )
        },
        "/v1/tokens/{token_id}": {
            "delete": operation(
                "revokeToken",
                "Revoke one token, on every instance at once (a user token may revoke itself)",
                SERVICE_KEY_OR_USER_TOKEN,
                {204: {"description": "Revoked"}},
                (401, 403, 404, 429, 503),
                parameters=[_path_parameter("token_id", {"pattern": TOKEN_ID_PATTERN})],
            )
        },
        "/v1/subjects/{sub}/revoke": {
            "post": operation(
                "revokeSubject",
                "Revoke every credential of a user issued until not_before (default now)",
                SERVICE_KEY,
                {200: json_answer("SubjectRevoked")},
                (400, 401, 404, 413, 415, 422, 503),
                body=("SubjectRevocation", False),
                parameters=[_path_parameter("sub", _PATH_SUBJECT)],
            )
        },
    }


def schemas(settings: Settings) -> JsonObject:
    """The token surface's schemas; a token lives at most BROKER_TOKEN_MAX_TTL_S, and binds only
    presets BROKER_POLICY_FILE names, within its channel cap."""
    rules = rules_from_settings(settings)
    request = closed(
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
                "description": "Seconds; null or absent means BROKER_TOKEN_TTL_S",
            },
            **_preset_properties(sorted(rules.presets)),
            "max_channels": _count(rules.max_channels, "Most audio channels a session may ask"),
            "max_duration_s": _count(GLADIA_MAX_SESSION_S, "Longest a session may last, in s"),
            "max_sessions": _count(MAX_SESSIONS_BOUND, "Sessions the token may create in all"),
            "single_use": {
                "type": ["boolean", "null"],
                "description": "true: max_sessions 1",
            },
            "client_ref": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": MAX_CLIENT_REF_LENGTH,
                "pattern": CLIENT_REF_PATTERN,
                "description": "The app's own reference, opaque: carried to usage and events",
            },
        },
        ("sub",),
    )
    request["not"] = {"required": ["preset", "presets"]}
    request["if"] = {"properties": {"single_use": {"const": True}}, "required": ["single_use"]}
    request["then"] = {"properties": {"max_sessions": {"enum": [1, None]}}}
    return {
        "TokenRequest": request,
        "Token": closed(
            {
                "token": {"type": "string"},
                "token_id": {"type": "string", "pattern": TOKEN_ID_PATTERN},
                "expires_at": timestamp(),
                "bindings": _bindings(),
            },
            ("token", "token_id", "expires_at"),
        ),
        "SubjectRevocation": closed(
            {
                "not_before": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "description": "Unix seconds, at most BROKER_TOKEN_MAX_TTL_S ahead; "
                    "credentials issued until then are refused. Absent or null: now",
                }
            }
        ),
        "SubjectRevoked": closed(
            {"sub": {"type": "string"}, "not_before": {"type": "number"}}, ("sub", "not_before")
        ),
    }


def _preset_properties(names: list[str]) -> JsonObject:
    """`preset` or `presets`, naming configured presets; only null when none is configured."""
    if not names:
        return {"preset": {"type": "null"}, "presets": {"type": "null"}}
    return {
        "preset": {"enum": [*names, None], "description": "The one preset sessions may use"},
        "presets": {
            "type": ["array", "null"],
            "items": {"enum": names},
            "minItems": 1,
            "maxItems": MAX_PRESETS,
            "description": "The presets sessions may be created from",
        },
    }


def _count(maximum: int, description: str) -> JsonObject:
    return {"type": ["integer", "null"], "minimum": 1, "maximum": maximum,
            "description": description}  # fmt: skip


def _bindings() -> JsonObject:
    """The bindings that apply to a minted token, as the request named them."""
    return closed(
        {
            "presets": {"type": "array", "items": {"type": "string"}},
            "max_channels": {"type": "integer"},
            "max_duration_s": {"type": "integer"},
            "max_sessions": {"type": "integer"},
            "client_ref": {"type": "string"},
        }
    )


def _path_parameter(name: str, schema: JsonObject) -> JsonObject:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", **schema}}
