"""Logging set up in one place, with one redaction layer that every record passes through."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("broker.access")

REDACTED = "[redacted]"
# Query values that are credentials, bearer credentials, and session URLs (their token is a key).
_PATTERNS = (
    re.compile(r"(?i)(token|key|capability|secret|signature)=[^&\s\"']+"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"wss?://[^\s\"']+"),
    # The capability of a callback URL is its last path segment.
    re.compile(r"/v1/callbacks/(?!\{capability\})[^\s\"'/?#]+"),
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Redactor:
    """Removes held secrets and credential-shaped text from a string."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}={REDACTED}", text)
        text = _PATTERNS[1].sub(f"Bearer {REDACTED}", text)
        text = _PATTERNS[2].sub(f"wss://{REDACTED}", text)
        return _PATTERNS[3].sub(f"/v1/callbacks/{REDACTED}", text)


_original_record_factory = logging.getLogRecordFactory()
_held_secrets: set[str] = set()


def install_redaction(secrets: Iterable[str]) -> None:
    """Redact every log record as it is made, whichever handler (or test) receives it later."""
    _held_secrets.update(secrets)
    redact = Redactor(_held_secrets)

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = _original_record_factory(*args, **kwargs)
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        return record

    logging.setLogRecordFactory(make_record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


def configure_logging(*, json_lines: bool, level: str = "INFO") -> None:
    """Route the broker's and uvicorn's loggers to one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # The broker writes its own access line, without query strings or path secrets, and its own
    # upstream lines (httpx's name every URL it calls).
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # sse-starlette logs every chunk it sends (transcripts) at DEBUG.
    logging.getLogger("sse_starlette").setLevel(logging.INFO)


class AccessLogMiddleware:
    """A request id on every answer, and one access line naming the route, never the raw path."""

    def __init__(self, app: ASGIApp, route_names: dict[Any, str]) -> None:
        self.app = app
        self._route_names = route_names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-request-id")
        request_id = offered if offered and _REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = self._route_names.get(scope.get("endpoint"), "unmatched")
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
            }
            logger.info(
                "%s %s %s %.2fms", scope["method"], route, status, duration_ms,
                extra={"fields": fields},
            )  # fmt: skip


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
