"""The error answers: problem+json on /v1/ and ops routes, Gladia's envelope on the /v2/ facade."""

from __future__ import annotations

from broker.errors import REASONS
from broker.web.openapi.schema import JSON, PROBLEM, JsonObject, closed, schema_ref
from broker.web.problems import problem_catalog

ERROR_DESCRIPTIONS = {
    400: "The request cannot be read (malformed JSON, bad query parameter); on /v2/, also "
    "fields that are not allowed (Gladia answers those 400)",
    401: "No valid credential, or a revoked one (`reason`: token_revoked, subject_revoked)",
    404: "No such session (or not the caller's: the two look the same)",
    429: "A limit is reached (live sessions, creates or reads per minute, failed attempts, the "
    "daily audio budget; `reason` names which); see Retry-After",
    405: "The path exists, not with this method",
    403: "A binding of the token refuses it (`reason` names which), or on the /v2/ facade the "
    "session is still live at Gladia (as Gladia answers)",
    409: "The session is still live at Gladia, or an Idempotency-Key was spent",
    413: "The body is larger than BROKER_MAX_BODY_BYTES",
    415: "The body is not JSON",
    422: "Fields that are unknown, forbidden or invalid, each named in `errors`",
    502: "Gladia gave no usable answer",
    503: "Redis or Gladia's capacity is unavailable; try again after Retry-After",
    504: "Gladia did not answer in time",
}


def error_ref(status: int, *, envelope: bool) -> JsonObject:
    """A reference to the shared answer for this error status, in the operation's error format."""
    family = "gladia" if envelope else "problem"
    return {"$ref": f"#/components/responses/{family}{status}"}


def error_responses() -> JsonObject:
    """Every error answer, once as problem+json and once in Gladia's envelope."""
    return {
        **{
            f"problem{status}": _problem(text, status)
            for status, text in ERROR_DESCRIPTIONS.items()
        },
        **{
            f"gladia{status}": _envelope(text, status)
            for status, text in ERROR_DESCRIPTIONS.items()
        },
    }


def _problem(description: str, status: int) -> JsonObject:
    answer: JsonObject = {
        "description": description,
        "content": {PROBLEM: {"schema": schema_ref("Problem")}},
    }
    if status == 401:
        answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
    if status == 405:
        answer["headers"] = {"Allow": {"schema": {"type": "string"}, "required": True}}
    if status in (429, 503):
        answer["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return answer


def _envelope(description: str, status: int) -> JsonObject:
    answer = _problem(description, status)
    answer["content"] = {JSON: {"schema": schema_ref("GladiaError")}}
    return answer


def error_schemas() -> JsonObject:
    """The bodies of the two error formats."""
    return {
        "Problem": closed(
            {
                "type": {
                    "type": "string",
                    "description": "The problem type; GET it (relative to the broker's URL) "
                    "for what it means. Stable: switch on it, or on `reason`.",
                    "enum": sorted(entry["type"] for entry in problem_catalog().values()),
                },
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "reason": {
                    "type": "string",
                    "description": "The machine-readable cause (GET /problems lists them all).",
                    "enum": sorted(REASONS),
                },
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": closed(
                        {"field": {"type": "string"}, "message": {"type": "string"}},
                        ("field", "message"),
                    ),
                },
            },
            ("type", "title", "status", "reason"),
        ),
        "GladiaError": closed(
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
    }
