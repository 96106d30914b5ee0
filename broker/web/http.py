"""Reading untrusted request bodies and writing JSON answers, the same way on every route."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from broker.bounded_json import loads_bounded
from broker.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

NO_STORE = {"Cache-Control": "no-store"}


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds `max_bytes`, before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(f"The body must be at most {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"The body must be at most {max_bytes} bytes")
    return bytes(body)


async def read_json(request: Request, max_bytes: int, *, required: bool = True) -> Any:
    """The body parsed as JSON, or a 4xx that says what is wrong with it."""
    body = await read_body(request, max_bytes)
    if not body.strip():
        if required:
            raise BadRequest("The body must be a JSON object")
        return {}
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("The body must be sent as application/json")
    try:
        # JSON on the wire is UTF-8 (RFC 8259); json.loads would guess UTF-16 from a BOM.
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid UTF-8") from None
    try:
        return loads_bounded(text)
    except ValueError as exc:
        raise BadRequest(f"The body is not valid JSON ({exc.args[0].split(':')[0]})") from None


def bounded_int(text: str | None, name: str, low: int, high: int, default: int) -> int:
    """A whole-number query parameter within [low, high], or a 400 naming it."""
    if text is None:
        return default
    # isdigit() alone accepts '²' and other digits int() refuses.
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}")
    return int(text)


def json_body(content: Any) -> bytes:
    """Compact UTF-8 JSON, as Starlette's JSONResponse writes it, by orjson: a twentieth of
    json.dumps' CPU for a session's view (docs/performance.md)."""
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class _JSONAnswer(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json_body(content)


def json_response(content: Any, status_code: int = 200, *, no_store: bool = False) -> JSONResponse:
    return _JSONAnswer(content, status_code=status_code, headers=NO_STORE if no_store else None)
