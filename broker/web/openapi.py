"""The broker's own API, described by hand as OpenAPI 3.1 (Starlette generates none).

Kept true by tests: every route of the app is in the document and every operation in the
document is a route (tests/unit/test_openapi.py), and schemathesis checks the live broker
against it (tests/broker/test_fuzz_openapi.py). Request bodies are closed
(`additionalProperties: false`), as the policy refuses unknown fields.
"""

from __future__ import annotations

from typing import Any

from broker.identity.credentials import MAX_SUBJECT_LENGTH, SUBJECT_PATTERN
from broker.policy.init_body import MESSAGE_FLAGS
from broker.policy.rules import PolicyRules
from broker.settings import Settings
from broker.web.routes.events import MAX_PAGE as EVENTS_MAX_PAGE
from broker.web.routes.facade import MAX_OFFSET as FACADE_MAX_OFFSET
from broker.web.routes.facade import MAX_PAGE as FACADE_MAX_PAGE
from broker.web.routes.sessions import MAX_PAGE

JSON = "application/json"
PROBLEM = "application/problem+json"
# What a cursor returned by GET /v1/sessions looks like: `<score>:<session id>`.
EVENT_ID = r"^[0-9]{1,20}-[0-9]{1,20}$"
CURSOR_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,20})?:.+$"

USER_TOKEN: list[dict[str, list[str]]] = [{"userToken": []}]
SERVICE_KEY: list[dict[str, list[str]]] = [{"serviceKey": []}]

_ERRORS = {
    400: "The request cannot be read (malformed JSON, bad query parameter); on /v2/, also "
    "fields that are not allowed (Gladia answers those 400)",
    401: "No valid credential",
    404: "No such session (or not the caller's: the two look the same)",
    429: "A limit is reached (live sessions, creates per minute, failed attempts); see Retry-After",
    405: "The path exists, not with this method",
    403: "The session is still live at Gladia (the /v2/ facade, as Gladia answers)",
    409: "The session is still live at Gladia, or an Idempotency-Key was spent",
    413: "The body is larger than BROKER_MAX_BODY_BYTES",
    415: "The body is not JSON",
    422: "Fields that are unknown, forbidden or invalid, each named in `errors`",
    502: "Gladia gave no usable answer",
    503: "Redis or Gladia's capacity is unavailable; try again after Retry-After",
    504: "Gladia did not answer in time",
}


def build_openapi(settings: Settings, rules: PolicyRules | None = None) -> dict[str, Any]:
    """The document served at GET /openapi.json, for these settings and policy rules."""
    rules = rules or PolicyRules()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gladia broker",
            "version": "1",
            "description": (
                "Creates Gladia Live v2 sessions for authenticated end users and finds them "
                "again. Errors are RFC 9457 problem details."
            ),
        },
        "paths": _paths(rules),
        "components": {
            "securitySchemes": {
                "userToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An end user's token, minted by POST /v1/tokens or the CLI",
                },
                "serviceKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A key of BROKER_SERVICE_KEYS: the app's own backend",
                },
            },
            "schemas": _schemas(settings, rules),
            "responses": {
                **{f"problem{status}": _problem(text, status) for status, text in _ERRORS.items()},
                **{f"gladia{status}": _envelope(text, status) for status, text in _ERRORS.items()},
            },
        },
    }


def _paths(rules: PolicyRules) -> dict[str, Any]:
    session_id = {
        "name": "session_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    }
    return {
        "/v1/tokens": {
            "post": _operation(
                "mintToken",
                "Mint a token for one of the app's users",
                SERVICE_KEY,
                {201: _json("Token")},
                (400, 401, 413, 415, 422, 429),
                body=("TokenRequest", True),
            )
        },
        "/v1/sessions": {
            "post": _operation(
                "createSession",
                "Create a live session; stream audio to the returned url",
                USER_TOKEN,
                {201: _json("CreatedSession", no_store=True)},
                (400, 401, 409, 413, 415, 422, 429, 502, 503, 504),
                body=("CreateSessionRequest", False),
            ),
            "get": _operation(
                "listSessions",
                "The caller's sessions, newest first",
                USER_TOKEN,
                {200: _json("SessionPage", no_store=True)},
                (400, 401, 429, 503),
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                    },
                ],
            ),
        },
        "/v1/sessions/{session_id}": {
            "get": _operation(
                "getSession",
                "A session, and its url while it can still be used (reconnect)",
                USER_TOKEN,
                {200: _json("Session", no_store=True)},
                (401, 404, 429, 503),
                parameters=[session_id],
            ),
            "delete": _operation(
                "deleteSession",
                "Delete a finished session at Gladia and here",
                USER_TOKEN,
                {204: {"description": "Deleted"}},
                (401, 404, 409, 429, 502, 503, 504),
                parameters=[session_id],
            ),
        },
        "/v1/sessions/{session_id}/result": {
            "get": _operation(
                "getSessionResult",
                "Gladia's result without the callback URL or broker metadata",
                USER_TOKEN,
                {200: _json("Result", no_store=True)},
                (401, 404, 429, 502, 503, 504),
                parameters=[session_id],
            ),
        },
        "/v1/sessions/{session_id}/events": {
            "get": _operation(
                "getSessionEvents",
                "The session's events from Gladia, oldest first; SSE with "
                "Accept: text/event-stream",
                USER_TOKEN,
                {
                    200: {
                        "description": "OK",
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/EventPage"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    }
                },
                (400, 401, 404, 429, 503),
                parameters=[
                    session_id,
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "string", "pattern": EVENT_ID},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": EVENTS_MAX_PAGE},
                    },
                ],
            ),
        },
        "/v1/callbacks/{capability}": {
            "post": _operation(
                "receiveCallback",
                "Gladia's per-session callback; the path's capability is its credential",
                [],
                {
                    202: {"description": "Kept until the create it belongs to settles"},
                    204: {"description": "Stored (or a duplicate)"},
                },
                (400, 404, 413, 503),
                parameters=[
                    {
                        "name": "capability",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    }
                ],
                body=("GladiaEvent", False),
            ),
        },
        "/v1/webhooks/gladia": {
            "post": _operation(
                "receiveWebhook",
                "Gladia's account webhook, verified with the Standard Webhooks signature",
                [],
                {204: {"description": "Stored (or a duplicate)"}},
                (400, 401, 404, 413, 503),
                body=("GladiaEvent", False),
            ),
        },
        "/v2/live": {
            "post": _operation(
                "facadeCreate",
                "Gladia's POST /v2/live, for the official SDKs",
                USER_TOKEN,
                {201: _json("FacadeCreated", no_store=True)},
                (400, 401, 409, 413, 415, 429, 502, 503, 504),
                body=("CreateSessionRequest", False),
                parameters=[
                    {"name": "region", "in": "query", "schema": {"enum": list(rules.regions)}}
                ],
                envelope=True,
            ),
            "get": _operation(
                "facadeList",
                "Gladia's GET /v2/live: the caller's sessions, newest first",
                USER_TOKEN,
                {200: _json("FacadePage", no_store=True)},
                (400, 401, 429, 502, 503, 504),
                parameters=[
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": FACADE_MAX_OFFSET},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": FACADE_MAX_PAGE},
                    },
                ],
                envelope=True,
            ),
        },
        "/v2/live/{session_id}": {
            "get": _operation(
                "facadeGet",
                "Gladia's GET /v2/live/{id}, sanitised",
                USER_TOKEN,
                {200: _json("Result", no_store=True)},
                (401, 404, 429, 502, 503, 504),
                parameters=[session_id],
                envelope=True,
            ),
            "delete": _operation(
                "facadeDelete",
                "Gladia's DELETE /v2/live/{id}",
                USER_TOKEN,
                {202: {"description": "Deleted"}},
                (401, 403, 404, 429, 502, 503, 504),
                parameters=[session_id],
                envelope=True,
            ),
        },
        "/v2/live/{session_id}/file": {
            "get": _operation(
                "facadeFile",
                "Gladia's GET /v2/live/{id}/file: the recorded audio, streamed",
                USER_TOKEN,
                {
                    200: {
                        "description": "The audio",
                        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                    }
                },
                (401, 404, 429, 502, 503, 504),
                parameters=[session_id],
                envelope=True,
            ),
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics (on BROKER_METRICS_PORT when set)",
                [],
                {
                    200: {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                (),
            )
        },
        "/healthz": {
            "get": _operation("health", "The process is alive", [], {200: _json("Health")}, ())
        },
        "/readyz": {
            "get": _operation(
                "readiness",
                "Redis answers",
                [],
                {
                    200: _json("Readiness"),
                    503: {
                        "description": "Redis does not answer",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Readiness"}}},
                    },
                },
                (),
            )
        },
        "/openapi.json": {
            "get": _operation("openapi", "This document", [], {200: _json("OpenApiDocument")}, ())
        },
    }


def _operation(
    operation_id: str,
    summary: str,
    security: list[dict[str, list[str]]],
    answers: dict[int, dict[str, Any]],
    errors: tuple[int, ...],
    *,
    body: tuple[str, bool] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    envelope: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(status): answer for status, answer in answers.items()}
    # The /v2/ facade answers errors in Gladia's envelope; everything else in problem+json.
    family = "gladia" if envelope else "problem"
    for status in (*errors, 405):
        responses[str(status)] = {"$ref": f"#/components/responses/{family}{status}"}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "security": security,
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        schema_name, required = body
        operation["requestBody"] = {
            "required": required,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
        }
    return operation


def _json(schema_name: str, *, no_store: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": "OK",
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }
    if no_store:
        answer["headers"] = {
            "Cache-Control": {"schema": {"type": "string", "const": "no-store"}, "required": True}
        }
    return answer


def _problem(description: str, status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 401:
        answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
    if status == 405:
        answer["headers"] = {"Allow": {"schema": {"type": "string"}, "required": True}}
    if status in (429, 503):
        answer["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return answer


def _envelope(description: str, status: int) -> dict[str, Any]:
    answer = _problem(description, status)
    answer["content"] = {JSON: {"schema": {"$ref": "#/components/schemas/GladiaError"}}}
    return answer


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def _switch(enabled: bool) -> dict[str, Any]:
    """An add-on switch: free when ops enabled the add-on, otherwise only `false`."""
    return {"type": "boolean"} if enabled else {"const": False}


def _create_body(rules: PolicyRules, messages_config: dict[str, Any]) -> dict[str, Any]:
    realtime: dict[str, Any] = {
        "translation": _switch(rules.translation is not None),
        "named_entity_recognition": _switch(rules.named_entity_recognition),
        "sentiment_analysis": _switch(rules.sentiment_analysis),
        "custom_vocabulary": _switch(rules.custom_vocabulary is not None),
    }
    # The add-ons' own configurations are checked against the policy file's caps (README).
    if rules.translation is not None:
        realtime["translation_config"] = {"type": "object"}
    if rules.custom_vocabulary is not None:
        realtime["custom_vocabulary_config"] = {"type": "object"}
    post: dict[str, Any] = {"summarization": _switch(rules.summarization is not None)}
    if rules.summarization is not None:
        post["summarization_config"] = _closed({"type": {"enum": list(rules.summarization.types)}})
    properties: dict[str, Any] = {
        "encoding": {"enum": list(rules.encodings)},
        "bit_depth": {"enum": list(rules.bit_depths)},
        "sample_rate": {"enum": list(rules.sample_rates)},
        "channels": {"type": "integer", "minimum": 1, "maximum": rules.max_channels},
        "endpointing": {"type": "number", "minimum": 0.01, "maximum": 10},
        "maximum_duration_without_endpointing": {"type": "number", "minimum": 5, "maximum": 60},
        "language_config": _closed(
            {
                "languages": {
                    "type": "array",
                    "items": {"enum": sorted(rules.languages)},
                    "maxItems": rules.max_languages,
                    "uniqueItems": True,
                },
                "code_switching": {"type": "boolean"},
            }
        ),
        "messages_config": messages_config,
        "realtime_processing": _closed(realtime),
        "post_processing": _closed(post),
        "region": {"enum": list(rules.regions)},
    }
    if rules.presets:
        properties["preset"] = {"enum": sorted(rules.presets)}
    body = _closed(properties)
    telephony = [name for name in ("wav/alaw", "wav/ulaw") if name in rules.encodings]
    if telephony:
        # The 8-bit telephony encodings cannot have Gladia's default depth of 16.
        body["if"] = {"properties": {"encoding": {"enum": telephony}}, "required": ["encoding"]}
        body["then"] = {"properties": {"bit_depth": {"const": 8}}}
    return body


def _schemas(settings: Settings, rules: PolicyRules) -> dict[str, Any]:
    timestamp = {"type": "string", "minLength": 1}
    messages_config = _closed(
        {flag: {"type": "boolean"} for flag in MESSAGE_FLAGS}
        # Reconnecting without losing audio needs acknowledgments: they cannot be turned off.
        | {"receive_acknowledgments": {"const": True}}
    )
    stored_messages_config = {"type": "object", "additionalProperties": {"type": "boolean"}}
    session_fields = {
        "id": {"type": "string"},
        "url": {"type": "string", "description": "The wss URL to stream to; a credential"},
        "created_at": timestamp,
        "expires_at": timestamp,
        "messages_config": stored_messages_config,
    }
    return {
        "Problem": _closed(
            {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": _closed(
                        {"field": {"type": "string"}, "message": {"type": "string"}},
                        ("field", "message"),
                    ),
                },
            },
            ("type", "title", "status"),
        ),
        "TokenRequest": _closed(
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
        "Token": _closed(
            {"token": {"type": "string"}, "expires_at": timestamp}, ("token", "expires_at")
        ),
        "CreateSessionRequest": _create_body(rules, messages_config),
        "CreatedSession": _closed(
            session_fields, ("id", "url", "created_at", "expires_at", "messages_config")
        ),
        "Session": _closed(
            {**session_fields, "status": {"type": "string"}},
            ("id", "status", "created_at", "expires_at", "messages_config"),
        ),
        "SessionPage": _closed(
            {
                "items": {
                    "type": "array",
                    "items": _closed(
                        {k: v for k, v in session_fields.items() if k != "url"}
                        | {"status": {"type": "string"}},
                        ("id", "status", "created_at", "expires_at", "messages_config"),
                    ),
                },
                "next_cursor": {"type": ["string", "null"]},
            },
            ("items", "next_cursor"),
        ),
        "Result": {
            "type": "object",
            "description": "Gladia's GET /v2/live/{id}, without callback_config or custom_metadata",
        },
        "EventPage": _closed(
            {
                "items": {
                    "type": "array",
                    "items": _closed(
                        {
                            "id": {"type": "string"},
                            "event": {"type": "string"},
                            "source": {"type": "string"},
                            "received_at": {"type": "string"},
                            "payload": {},
                        },
                        ("id", "event", "source", "received_at", "payload"),
                    ),
                },
                "next_cursor": {"type": "string"},
                "ended": {"type": "boolean"},
            },
            ("items", "next_cursor", "ended"),
        ),
        "GladiaEvent": {"type": "object", "description": "What Gladia sends; verified, then kept"},
        "GladiaError": _closed(
            {
                "timestamp": {"type": "string"},
                "path": {"type": "string"},
                "request_id": {"type": "string"},
                "statusCode": {"type": "integer"},
                "message": {"type": "string"},
                "validation_errors": {"type": "array", "items": {"type": "string"}},
            },
            ("timestamp", "path", "request_id", "statusCode", "message"),
        ),
        "FacadeCreated": _closed(
            {"id": {"type": "string"}, "created_at": timestamp, "url": {"type": "string"}},
            ("id", "created_at", "url"),
        ),
        "FacadePage": _closed(
            {
                "first": {"type": "string"},
                "current": {"type": "string"},
                "next": {"type": ["string", "null"]},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
            },
            ("first", "current", "next", "items"),
        ),
        "Health": _closed({"status": {"const": "ok"}}, ("status",)),
        "Readiness": _closed(
            {"status": {"enum": ["ready", "unavailable"]}, "redis": {"enum": ["up", "down"]}},
            ("status", "redis"),
        ),
        "OpenApiDocument": {"type": "object", "required": ["openapi", "paths"]},
    }
