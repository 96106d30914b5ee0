"""Logging set up in one place, with one redaction layer that every record passes through.

Every record is redacted as it is made (a LogRecord factory), before any handler, formatter or
test sees it. Structured fields, given as the record's mapping argument
(`logger.info("%(route)s …", fields)`) or as `extra={"fields": {…}}`, pass through the same
layer: `record.fields` always answers their redacted values.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from starlette.types import Scope

if TYPE_CHECKING:
    from broker.observability.metrics import Metrics

logger = logging.getLogger("broker.access")

REDACTED = "[redacted]"
_CREDENTIAL_NAMES = r"token|key|capability|secret|signature|password|sig"
_BASE64URL = "[A-Za-z0-9_-]"
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
    (re.compile(rf"{_BASE64URL}{{8,}}\.{_BASE64URL}{{4,}}\.{_BASE64URL}{{20,}}"), REDACTED),
)
# The first two parts of a signed token, found from its first dot: a literal first character
# lets the regex engine skip to each dot, where a pattern starting with a class tries every
# position (and backtracks through every long run of letters, such as a request id).
_TOKEN_START = re.compile(rf"\.(?<={_BASE64URL}{{8}}\.){_BASE64URL}{{4,}}+\.")
_CALLBACK_CAPABILITY = re.compile(r"/v1/callbacks/(?!\{capability\})")
# What a client may choose as its request id (X-Request-ID); anything else gets a fresh one.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def may_hold_credential(text: str) -> bool:
    """Whether any pattern could match `text`: what each one needs, checked cheaply.

    A superset of the patterns above (tests/unit/test_log_redaction.py holds it to that): ':'
    or '=', a bearer, a callback path with a capability, or the first two parts of a signed
    token. Most text (every access line and its fields) holds none of them, and these checks
    cost a fraction of running the patterns, or of one regex alternating between them.
    """
    return (
        ":" in text
        or "=" in text
        or ("/v1/callbacks/" in text and _CALLBACK_CAPABILITY.search(text) is not None)
        or "bearer" in text.lower()
        or _TOKEN_START.search(text) is not None
    )


class RedactedFields(dict[str, Any]):
    """Structured fields that have passed the redaction layer; only a Redactor makes one."""


# Numbers, booleans and None: values that cannot hold a secret, kept as they are.
_PLAIN = (bool, int, float, type(None))


class Redactor:
    """Removes held secrets and credential-shaped text from a string."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if not may_hold_credential(text):
            return text
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def is_clean(self, text: str) -> bool:
        """Whether redacting `text` leaves it as it is: no secret, nothing credential-shaped."""
        for secret in self._secrets:
            if secret in text:
                return False
        return not may_hold_credential(text)

    def value(self, value: Any) -> Any:
        """A structured field's value, redacted when it is text."""
        return value if isinstance(value, _PLAIN) else self(str(value))

    def fields(self, given: Mapping[Any, Any]) -> RedactedFields:
        """Structured fields, their names and their values redacted."""
        return self.message_and_fields("", given)[1]

    def message_and_fields(
        self, message: str, given: Mapping[Any, Any]
    ) -> tuple[str, RedactedFields]:
        """A record's message and fields, redacted; one check over them all when all are clean.

        What a secret or a check finds in one text it finds in the texts joined by newlines
        (no check needs what follows a text to be anything but a newline), so the joined text
        being clean means every text is; joining may add a match, and then each is redacted.
        """
        fields = RedactedFields()
        texts = [message]
        for given_name, given_value in given.items():
            name, value = str(given_name), given_value
            if not isinstance(value, _PLAIN):
                value = str(value)
                texts.append(value)
            texts.append(name)
            fields[name] = value
        if self.is_clean("\n".join(texts)):
            return message, fields
        return self(message), RedactedFields(
            (self(name), self.value(value)) for name, value in fields.items()
        )


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


def _passed(given: Any) -> RedactedFields:
    """Fields as the layer left them: redacted now unless the layer made them."""
    if isinstance(given, RedactedFields):
        return given
    return _redact.fields(given) if isinstance(given, Mapping) else RedactedFields()


class RedactedLogRecord(logging.LogRecord):
    """A record whose structured fields are read through the redaction layer.

    Fields given as the mapping argument are redacted when the record is made, with its
    message. `extra={"fields": …}` is written straight into the record after the factory ran,
    so those are redacted when first read, and again whenever another mapping is set. The
    factory fills both private slots, so `extra` cannot write them (logging refuses to overwrite
    a record's attribute), and the getter trusts only what the layer itself made.
    """

    @property
    def fields(self) -> dict[str, Any]:
        state = self.__dict__
        merged = dict(_passed(state.get("_argument_fields")))
        given = state.get("fields")
        if given is not None:
            seen = state.get("_extra_fields")
            if isinstance(seen, tuple) and seen[0] is given:
                redacted = _passed(seen[1])
            else:
                redacted = _passed(given)
                state["_extra_fields"] = (given, redacted)
            merged.update(redacted)
        # A copy each read: a reader's change never reaches the next reader unredacted.
        return merged

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
        given = record.args if isinstance(record.args, Mapping) else None
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            message = f"{record.msg} (arguments did not match the message)"
        record.args = None
        if given is None:
            record.msg, fields = redact(message), RedactedFields()
        else:
            record.msg, fields = redact.message_and_fields(message, given)
        state = record.__dict__
        state["_argument_fields"] = fields
        state["_extra_fields"] = None
        current = _current_request.get()
        state["request_id"] = current.request_id if current else None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(make_record)


# A line's entry is flat (field values are numbers, booleans, None or text once redacted), so
# it cannot refer to itself: json.dumps' check for circular references is work for nothing.
_encode_ascii_entry = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


def _encode_entry(entry: dict[str, Any]) -> str:
    """The line's JSON, in ASCII (non-ASCII text escaped, as json.dumps does, whatever stderr's
    encoding): by orjson, a twentieth of json's CPU, unless the entry holds non-ASCII text or
    values orjson refuses (json then writes them, or raises, as before)."""
    try:
        line = orjson.dumps(entry).decode()
    except TypeError:
        return _encode_ascii_entry(entry)
    return line if line.isascii() else _encode_ascii_entry(entry)


# A time's end, `000Z` to `999Z`, by millisecond: a lookup costs half of formatting `%03d`.
_MILLISECOND_SUFFIXES = tuple(f"{millisecond:03d}Z" for millisecond in range(1000))


class UtcTimeFormatter(logging.Formatter):
    """Times in RFC 3339, UTC, to the millisecond (`2026-12-06T21:40:01.123Z`), whatever `TZ` is."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        # The time up to its second, formatted once per second: strftime is a good part of a
        # line's cost; each line adds only its milliseconds.
        self._second: tuple[int, str] = (-1, "")

    def format_time(self, created: float) -> str:
        second = int(created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
            self._second = cached
        # Truncated, as logging's own `msecs`: never rounded up into the next second.
        return cached[1] + _MILLISECOND_SUFFIXES[int((created - second) * 1000)]

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.format_time(record.created)


class TextFormatter(UtcTimeFormatter):
    """`broker dev`'s lines: time, level, logger and message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")


class JsonFormatter(UtcTimeFormatter):
    """One JSON object per line: time, level, logger, message, request id and fields."""

    def format(self, record: logging.LogRecord) -> str:
        extra: dict[str, str] = {}
        if record.exc_text:
            extra["exception"] = record.exc_text
        if record.stack_info:
            extra["stack"] = record.stack_info
        return self.line(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            getattr(record, "request_id", None),
            getattr(record, "fields", {}),
            extra,
        )

    def line(
        self,
        created: float,
        level: str,
        name: str,
        message: str,
        request_id: str | None,
        fields: Mapping[str, Any],
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """One line, from a record's parts (the access line passes them without a record)."""
        entry: dict[str, Any] = {
            "time": self.format_time(created),
            "level": level,
            "logger": name,
            "message": message,
        }
        if request_id:
            entry["request_id"] = request_id
        for field_name, value in fields.items():
            entry.setdefault(field_name, value)  # a field never hides the line's own keys
        if extra:
            entry.update(extra)
        return _encode_entry(entry)


class JsonLineSink(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr's handler for JSON lines. Records are written as StreamHandler writes them; access
    lines are gathered over a turn of the event loop and written together once it ends.

    A line and a flush a request cost a write to the stream each: under load, the largest part
    of an access line (docs/performance.md). Gathered, a turn's answers share one write. A line
    is written at most a turn after its answer's last byte went out. Any record writes the lines
    before it first, so the stream keeps their order; flushing or closing the handler (as the
    interpreter's exit does) writes them too.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self._pending: list[str] = []

    def write_soon(self, line: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line)
            if len(self._pending) > 1:
                return
        try:
            asyncio.get_running_loop().call_soon(self.write_pending)
        except RuntimeError:  # no loop runs here: at once
            self.write_pending()

    def write_pending(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if not self._pending:
                return
            lines, self._pending = self._pending, []
            try:
                self.stream.write(self.terminator.join(lines) + self.terminator)
                super().flush()
            except Exception:  # as logging does: a failed write never fails a request
                self.handleError(logging.makeLogRecord({"msg": "access lines not written"}))

    def emit(self, record: logging.LogRecord) -> None:
        self.write_pending()
        super().emit(record)

    def flush(self) -> None:
        self.write_pending()
        super().flush()

    def close(self) -> None:
        self.write_pending()
        super().close()


# The handler `configure_logging` installed for JSON lines: access lines go straight to it while
# it is the only handler (`AccessLog`).
_direct_sink: JsonLineSink | None = None


def configure_logging(*, json_lines: bool, level: str = "INFO") -> None:
    """Route the broker's and uvicorn's loggers to one handler on stderr."""
    global _direct_sink
    handler: logging.StreamHandler[Any]
    if json_lines:
        handler = _direct_sink = JsonLineSink()
        handler.setFormatter(JsonFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TextFormatter())
        _direct_sink = None
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # Neither format names a thread or a process, so no record need look them up (the logging
    # HOWTO's "Optimization" switches; with multiprocessing imported, as uvicorn has it, the
    # process name alone is a tenth of a record's making).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # The broker writes its own access line, without query strings or path secrets, and its own
    # upstream lines (httpx's name every URL it calls).
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # sse-starlette logs every chunk it sends (transcripts) at DEBUG.
    logging.getLogger("sse_starlette").setLevel(logging.INFO)


ACCESS_MESSAGE = "%(method)s %(route)s %(status)s %(duration_ms).2fms"


@contextlib.contextmanager
def request_context(request_log: RequestLog) -> Iterator[None]:
    """Make `request_log` the current request's, for its access line and every record's id."""
    token = _current_request.set(request_log)
    try:
        yield
    finally:
        _current_request.reset(token)


class AccessLog:
    """One access line and the request metrics per request.

    The line names the route template, never the raw path, so no session id, capability or
    query string reaches it. When logging is as `serve` sets it up (JSON lines to one stream),
    the line is encoded and written here, without a LogRecord: a record costs most of a fast
    request's logging (docs/performance.md), and what the line holds is known. Whenever that
    set-up is not in place (tests, an operator's own handlers), it goes through `logging`.
    """

    def __init__(self, route_names: dict[Any, str], metrics: Metrics | None = None) -> None:
        self._route_names = route_names
        self._metrics = metrics

    def write(self, scope: Scope, request_log: RequestLog, status: int, duration_s: float) -> None:
        route = self._route_names.get(scope.get("endpoint"), "unmatched")
        method = scope["method"]
        client = scope.get("client")
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration_s * 1000, 2),
            "client": client[0] if client else None,
            "subject": request_log.subject,
            "upstream_status": request_log.upstream_status,
        }
        if not _write_direct(request_log.request_id, fields):
            logger.info(ACCESS_MESSAGE, fields)
        if self._metrics is not None:
            self._metrics.observe_request(method, route, status, duration_s)


def _write_direct(request_id: str, fields: dict[str, Any]) -> bool:
    """Write an access line straight to `serve`'s stream; False when it is not in place, or
    when a field holds text the redaction layer would change (the record path redacts it)."""
    sink = _direct_sink
    root = logging.getLogger()
    if (
        sink is None
        or root.handlers != [sink]
        or logger.handlers
        or logger.filters
        or root.filters
        or sink.filters
        or not logger.propagate
        or not logger.isEnabledFor(logging.INFO)
    ):
        return False
    texts = f"{fields['method']}\n{fields['client']}\n{request_id}"
    if not _redact.is_clean(texts):
        return False
    formatter = sink.formatter
    assert isinstance(formatter, JsonFormatter)
    message = ACCESS_MESSAGE % fields
    sink.write_soon(formatter.line(time.time(), "info", logger.name, message, request_id, fields))
    return True
