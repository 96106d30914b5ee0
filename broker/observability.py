"""Logging set up in one place, with one redaction layer that every record passes through.

Every record is redacted as it is made (a LogRecord factory), before any handler, formatter or
test sees it. Structured fields, given as the record's mapping argument
(`logger.info("%(route)s …", fields)`) or as `extra={"fields": {…}}`, are read through the same
layer: `record.fields` always answers their redacted values.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from broker.metrics import Metrics

logger = logging.getLogger("broker.access")

REDACTED = "[redacted]"
_CREDENTIAL_NAMES = r"token|key|capability|secret|signature|password|sig"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Session URLs, whole: their token is a bearer credential for the audio stream.
    (re.compile(r"wss?://[^\s\"'<>]+"), f"wss://{REDACTED}"),
    # Query strings of any other URL (they may carry keys, codes or capabilities).
    (re.compile(r"(\bhttps?://[^\s?#\"'<>]*)\?[^\s#\"'<>]*"), rf"\1?{REDACTED}"),
    # Credential-named query values outside a full URL (`/path?token=…`, `key=…`).
    (re.compile(rf"(?i)\b({_CREDENTIAL_NAMES})=[^&\s\"']+"), rf"\1={REDACTED}"),
    # Credential-named values in JSON, dict reprs and headers (`"token": "…"`).
    (
        re.compile(
            r"(?i)([\"']?(?:[\w-]*(?:token|key|secret|capability|password|authorization))"
            r"[\"']?\s*[:=]\s*[\"'])[^\"']*"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"), f"Bearer {REDACTED}"),
    # The capability in a callback path.
    (re.compile(r"/v1/callbacks/(?!\{capability\})[^\s/?#\"']+"), f"/v1/callbacks/{REDACTED}"),
    # Signed tokens (itsdangerous, JWT): three base64url parts, wherever they appear.
    (re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}"), REDACTED),
)
# What every pattern above needs to match somewhere (a superset of each): ':' or '=', a
# bearer, a callback path with a capability, or the first two parts of a signed token.
_MAYBE_CREDENTIAL = re.compile(
    r"[:=]|bearer|/v1/callbacks/(?!\{capability\})|[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.",
    re.IGNORECASE,
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
        # Most text (every access line and its fields) holds nothing any pattern could match;
        # one search says so, where running the patterns is most of the cost of a log line.
        if not _MAYBE_CREDENTIAL.search(text):
            return text
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """A structured field's value, redacted when it is text."""
        if isinstance(value, bool | int | float) or value is None:
            return value
        return self(str(value))


@dataclass
class RequestLog:
    """What one request's access line says; filled in as the request goes down the path."""

    request_id: str
    subject: str | None = None
    upstream_status: str | None = None


_current_request: contextvars.ContextVar[RequestLog | None] = contextvars.ContextVar(
    "broker_request", default=None
)


def note_subject(subject_key: str) -> None:
    """Record the request's subject (its hashed key, never the id) for the access line."""
    current = _current_request.get()
    if current is not None:
        current.subject = subject_key


def note_upstream_status(outcome: int | str) -> None:
    """Record Gladia's answer (a status code, `timeout` or `error`) for the access line."""
    current = _current_request.get()
    if current is not None:
        current.upstream_status = str(outcome)


_held_secrets: set[str] = set()
_redact = Redactor(())


class RedactedLogRecord(logging.LogRecord):
    """A record whose structured fields are read through the redaction layer.

    `extra={"fields": …}` is written straight into the record after the factory ran, so the
    fields are redacted when read, not when set: no way of passing them escapes the layer.
    """

    @property
    def fields(self) -> dict[str, Any]:
        given: dict[str, Any] = {}
        for source in (self.__dict__.get("_argument_fields"), self.__dict__.get("fields")):
            if isinstance(source, Mapping):
                given.update(source)
        return {str(name): _redact.value(value) for name, value in given.items()}

    @fields.setter
    def fields(self, value: Mapping[str, Any]) -> None:
        self.__dict__["fields"] = value


def install_redaction(secrets: Iterable[str]) -> None:
    """Redact every log record as it is made, whichever handler (or test) receives it later."""
    global _redact
    _held_secrets.update(secrets)
    _redact = redact = Redactor(_held_secrets)

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = RedactedLogRecord(*args, **kwargs)
        if isinstance(record.args, Mapping):
            record.__dict__["_argument_fields"] = dict(record.args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            message = f"{record.msg} (arguments did not match the message)"
        record.msg = redact(message)
        record.args = None
        current = _current_request.get()
        record.request_id = current.request_id if current else None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(make_record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for name, value in getattr(record, "fields", {}).items():
            entry.setdefault(name, value)  # a field never hides the line's own keys
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
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
    """A request id on every answer, one access line and the request metrics per request.

    The line names the route template, never the raw path, so no session id, capability or
    query string reaches it. It is written, and the metrics counted, before the last byte of
    the answer is sent: whoever has read an answer can already see both.
    """

    def __init__(
        self, app: ASGIApp, route_names: dict[Any, str], metrics: Metrics | None = None
    ) -> None:
        self.app = app
        self._route_names = route_names
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-request-id")
        request_id = offered if offered and _REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        request_log = RequestLog(request_id)
        context_token = _current_request.set(request_log)
        started = time.perf_counter()
        status = 500
        finished = False

        def finish() -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            self._finish(scope, request_log, status, time.perf_counter() - started)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finish()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            finish()
            _current_request.reset(context_token)

    def _finish(
        self, scope: Scope, request_log: RequestLog, status: int, duration_s: float
    ) -> None:
        route = self._route_names.get(scope.get("endpoint"), "unmatched")
        client = scope.get("client")
        fields = {
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round(duration_s * 1000, 2),
            "client": client[0] if client else None,
            "subject": request_log.subject,
            "upstream_status": request_log.upstream_status,
        }
        logger.info("%(method)s %(route)s %(status)s %(duration_ms).2fms", fields)
        if self._metrics is not None:
            self._metrics.observe_request(scope["method"], route, status, duration_s)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
