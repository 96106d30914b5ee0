"""Gladia's error envelope and the exception that carries it to the one place rendering it."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from broker.simulator.timestamps import iso_now

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class GladiaError(Exception):
    """A REST failure answered with Gladia's envelope."""

    def __init__(
        self,
        status_code: int,
        message: str | None = None,
        validation_errors: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.message = message or REASONS.get(status_code, "Error")
        self.validation_errors = validation_errors
        self.headers = headers or {}
        super().__init__(self.message)


def new_request_id() -> str:
    """Return a Gladia-style debug id such as ``G-821fe9df``."""
    return "G-" + secrets.token_hex(4)


def envelope(
    path: str, status_code: int, message: str, validation_errors: list[str] | None
) -> dict[str, Any]:
    """Build Gladia's error body."""
    body: dict[str, Any] = {
        "timestamp": iso_now(),
        "path": path,
        "request_id": new_request_id(),
        "statusCode": status_code,
        "message": message,
    }
    if validation_errors is not None:
        body["validation_errors"] = validation_errors
    return body


def error_response(path: str, error: GladiaError) -> JSONResponse:
    """Render a GladiaError as Gladia would answer it."""
    body = envelope(path, error.status_code, error.message, error.validation_errors)
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def handle_gladia_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler for GladiaError."""
    assert isinstance(exc, GladiaError)
    return error_response(request.url.path, exc)
