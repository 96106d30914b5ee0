"""Domain errors as answers: RFC 9457 problem+json, or Gladia's envelope on the facade."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from broker.errors import REASONS, BrokerError, FieldProblem, InvalidFields, UpstreamConflict

PROBLEM_JSON = "application/problem+json"
# A problem's `type` is this path and its name: the same on every deployment, so clients can
# switch on it, and resolved against the broker's URL it answers the type's description.
PROBLEM_TYPE_PREFIX = "/problems/"


def problem_type(error: BrokerError) -> str:
    return PROBLEM_TYPE_PREFIX + error.problem


def problem_catalog() -> dict[str, dict[str, Any]]:
    """Every problem type the broker answers: its `type` URI, title, status, default reason."""
    catalog: dict[str, dict[str, Any]] = {}
    pending: list[type[BrokerError]] = [BrokerError]
    while pending:
        error_class = pending.pop(0)
        pending.extend(error_class.__subclasses__())
        # A subclass sharing its parent's problem (a finer reason, same type) adds nothing.
        catalog.setdefault(
            error_class.problem,
            {
                "type": PROBLEM_TYPE_PREFIX + error_class.problem,
                "title": error_class.title,
                "status": error_class.status_code,
                "reason": error_class.default_reason,
            },
        )
    return catalog


def reasons() -> dict[str, str]:
    """Every `reason` a problem can carry, with what it means."""
    return dict(sorted(REASONS.items()))


def problem_response(error: BrokerError, instance: str | None = None) -> JSONResponse:
    """Render a domain error as RFC 9457 problem details, with its `reason`."""
    body: dict[str, Any] = {
        "type": problem_type(error),
        "title": error.title,
        "status": error.status_code,
        "reason": error.reason,
    }
    if error.detail:
        body["detail"] = error.detail
    if instance:
        body["instance"] = instance
    if error.problems:
        body["errors"] = [problem.as_dict() for problem in error.problems]
    return JSONResponse(
        body, status_code=error.status_code, headers=error.headers(), media_type=PROBLEM_JSON
    )


# Where Gladia's status differs from the broker's own for the same failure: Gladia answers
# field problems with 400 and `validation_errors`, and a session it cannot delete yet with 403.
_GLADIA_STATUS: tuple[tuple[type[BrokerError], int], ...] = (
    (InvalidFields, 400),
    (UpstreamConflict, 403),
)


def gladia_status(error: BrokerError) -> int:
    """The status Gladia would answer for this failure."""
    for error_class, status_code in _GLADIA_STATUS:
        if isinstance(error, error_class):
            return status_code
    return error.status_code


def gladia_envelope_response(error: BrokerError, path: str, request_id: str) -> JSONResponse:
    """Render a domain error in Gladia's envelope, for the `/v2/` facade the SDKs call."""
    status_code = gladia_status(error)
    moment = datetime.now(UTC)
    body: dict[str, Any] = {
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "path": path,
        "request_id": request_id,
        "statusCode": status_code,
        "message": error.detail or error.title,
    }
    if error.problems:
        body["validation_errors"] = [_validation_error(problem) for problem in error.problems]
    return JSONResponse(body, status_code=status_code, headers=error.headers())


def _validation_error(problem: FieldProblem) -> str:
    # "<field> <message>", the shape the SDKs read a field's path from; Gladia's own messages
    # (relayed from its 400s) already start with the field.
    if problem.message.startswith(problem.field):
        return problem.message
    return f"{problem.field} {problem.message}"


# The Gladia-compatible facade answers in Gladia's envelope, everything else in problem+json.
GLADIA_FACADE_PREFIX = "/v2/"


def error_response(error: BrokerError, path: str, request_id: str) -> JSONResponse:
    """The one rendering of a domain error, chosen by the surface the request came to."""
    if path.startswith(GLADIA_FACADE_PREFIX):
        return gladia_envelope_response(error, path, request_id)
    return problem_response(error)
