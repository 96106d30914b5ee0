"""The one redaction layer: every record, every part of it, as it is made."""

from __future__ import annotations

import json
import logging
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.datastructures import Secret
from starlette.types import Message, Receive, Scope, Send

from broker.identity.credentials import TokenService
from broker.observability.logs import (
    _PATTERNS,
    REDACTED,
    AccessLog,
    JsonFormatter,
    RedactedLogRecord,
    Redactor,
    configure_logging,
    install_redaction,
    may_hold_credential,
)
from broker.observability.metrics import Metrics
from broker.web.edge import CorsHeaders, EdgeMiddleware

HELD_SECRET = "held-secret-value-4f1c9a7e2b"
logger = logging.getLogger("broker.test")


@pytest.fixture(autouse=True)
def redaction(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction([HELD_SECRET])
    caplog.set_level(logging.DEBUG, logger="broker.test")


def redacted(record: logging.LogRecord) -> RedactedLogRecord:
    """A record as the layer made it, with its `fields`."""
    assert isinstance(record, RedactedLogRecord), "the redaction layer made no record"
    return record


def user_token() -> str:
    tokens = TokenService((Secret("s" * 40),), 600, 3600)
    return tokens.mint("alice").token


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        (f"key is {HELD_SECRET}", HELD_SECRET),
        ("joined wss://api.gladia.io/v2/live?token=abc123secret", "abc123secret"),
        ("GET https://api.gladia.io/v2/live?code=oauth-code-77 done", "oauth-code-77"),
        ("path /v1/sessions?token=tok-in-query-1", "tok-in-query-1"),
        ("Authorization: Bearer abc.def.ghi-bearer-value", "ghi-bearer-value"),
        ('{"token": "json-token-value", "ok": 1}', "json-token-value"),
        ("{'x-gladia-key': 'header-key-value'}", "header-key-value"),
        ("POST /v1/callbacks/cap-abc.def.ghi123 200", "cap-abc"),
        ("redis password=hunter2-password", "hunter2-password"),
    ],
)
def test_credential_shaped_text_is_removed(text: str, leaked: str) -> None:
    redacted = Redactor([HELD_SECRET])(text)
    assert leaked not in redacted
    assert REDACTED in redacted


def test_a_signed_user_token_is_removed_wherever_it_appears() -> None:
    token = user_token()
    assert token not in Redactor([])(f"could not verify {token} for a reason")


def test_ordinary_text_is_left_alone() -> None:
    text = "GET /v1/sessions/{session_id} 200 3.20ms broker.observability 127.0.0.1"
    assert Redactor([HELD_SECRET])(text) == text


def test_message_arguments_exceptions_and_stacks_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger.warning("calling with %s", HELD_SECRET)
    try:
        raise RuntimeError(f"boom wss://gladia/v2/live?token=secret-in-exception {HELD_SECRET}")
    except RuntimeError:
        logger.exception("failed", stack_info=True)
    formatted = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert HELD_SECRET not in formatted
    assert "secret-in-exception" not in formatted
    assert formatted.count(REDACTED) >= 3


def test_structured_fields_pass_through_the_same_layer(caplog: pytest.LogCaptureFixture) -> None:
    logger.info(
        "%(route)s %(status)s",
        {"route": "/v1/sessions", "status": 200, "note": f"with {HELD_SECRET}"},
    )
    record = redacted(caplog.records[-1])
    assert record.fields == {"route": "/v1/sessions", "status": 200, "note": f"with {REDACTED}"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["status"] == 200
    assert entry["message"] == "/v1/sessions 200"
    assert HELD_SECRET not in json.dumps(entry)


def test_fields_given_through_extra_pass_through_the_same_layer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger.info("refused", extra={"fields": {"limit": "subject_live", "note": HELD_SECRET}})
    record = redacted(caplog.records[-1])
    assert record.fields == {"limit": "subject_live", "note": REDACTED}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["limit"] == "subject_live"
    assert HELD_SECRET not in json.dumps(entry)


def test_a_message_whose_arguments_do_not_match_still_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger.info("%d items for %s", "not-a-number")
    assert "arguments did not match" in caplog.records[-1].getMessage()


def test_records_of_other_libraries_are_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="uvicorn.error")
    logging.getLogger("uvicorn.error").error("bad request with %s", HELD_SECRET)
    assert HELD_SECRET not in caplog.records[-1].getMessage()


def test_a_field_cannot_hide_the_lines_own_keys(caplog: pytest.LogCaptureFixture) -> None:
    logger.warning("payload %s", {"message": "forged", "level": "debug"})
    entry = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert entry["level"] == "warning"
    assert entry["message"].startswith("payload {")


# --- The redactor on single lines (and its fast path for lines that hold nothing) ----------

LINE_SECRET = "held-secret-value-1234"


@pytest.mark.parametrize(
    ("line", "leak"),
    [
        (f"failed with {LINE_SECRET} inside", LINE_SECRET),
        ("GET /x?token=abc123&b=2", "abc123"),
        ("Authorization: Bearer eyJzdWIi.abc", "eyJzdWIi"),
        ("authorization: bEaReR eyJzdWIi.abc", "eyJzdWIi"),
        ("url wss://api.gladia.io/v2/live?token=t0k3n", "t0k3n"),
        ("url ws://127.0.0.1:9/v2/live", "127.0.0.1:9"),
        ("token eyJzdWIiOiJhIn0.aXsBcD.abcdefghijklmnopqrstuv here", "abcdefghijklmnopqrstuv"),
        ("POST /v1/callbacks/c4p4b1l1ty 200", "c4p4b1l1ty"),
        ('{"refresh_token": "r3fr3sh"}', "r3fr3sh"),
    ],
)
def test_credentials_in_a_line_are_redacted(line: str, leak: str) -> None:
    redacted = Redactor([LINE_SECRET])(line)
    assert leak not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "line",
    [
        "GET /v1/sessions/{session_id} 200 0.42ms",
        "POST /v1/callbacks/{capability} 204 3.99ms",
        "127.0.0.1",
        "3f9c0a7d2b1e4c5f8a6b9d0e1f2a3b4c",
    ],
)
def test_an_ordinary_access_line_or_field_is_left_as_it_is(line: str) -> None:
    assert Redactor([LINE_SECRET])(line) == line


# --- Fields: redacted once, as the record is made, and never around the layer --------------


def test_texts_are_redacted_apart_so_joining_two_never_makes_a_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # "Bearer" then "abc123" would read as a bearer credential if they were one text.
    logger.info("%(scheme)s", {"scheme": "Bearer", "code": "abc123", "route": "/v1/sessions"})
    record = redacted(caplog.records[-1])
    assert record.getMessage() == "Bearer"
    assert record.fields == {"scheme": "Bearer", "code": "abc123", "route": "/v1/sessions"}


def test_a_fields_name_passes_through_the_layer_too(caplog: pytest.LogCaptureFixture) -> None:
    logger.info("named", {HELD_SECRET: 1, "kept": "yes"})
    assert HELD_SECRET not in str(redacted(caplog.records[-1]).fields)
    assert redacted(caplog.records[-1]).fields["kept"] == "yes"


def test_a_readers_change_to_the_fields_never_reaches_the_next_reader(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger.info("refused", extra={"fields": {"limit": "subject_live"}})
    record = redacted(caplog.records[-1])
    record.fields["note"] = HELD_SECRET
    assert record.fields == {"limit": "subject_live"}
    record.fields = {"note": HELD_SECRET}
    assert record.fields == {"note": REDACTED}


@pytest.mark.parametrize("slot", ["_argument_fields", "_extra_fields"])
def test_extra_cannot_write_the_layers_own_slots(slot: str) -> None:
    with pytest.raises(KeyError):
        logger.info("forged", extra={slot: {"note": HELD_SECRET}})


def test_a_record_made_from_a_plain_dict_still_has_its_fields_redacted() -> None:
    record = redacted(logging.makeLogRecord({"_argument_fields": {"note": HELD_SECRET}}))
    assert record.fields == {"note": REDACTED}


FRAGMENTS = (
    HELD_SECRET, "held-secret", "/v1/callbacks/", "{capability}", "bearer ", "BeArEr\t", "token",
    "=", ":", "'", '"', "?", "wss://", "https://h/p", "abcdefgh", "abcd", "abcdefghijklmnopqrstu",
    ".", "-", "_", " ", "\n", "0.42ms", "127.0.0.1", "/v1/sessions/{id}",
    # Letters that match ASCII ones when case is ignored: İ, the Kelvin sign, the long s; and é.
    "\u0130", "\u212a", "\u017f", "\u00e9",
)  # fmt: skip


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 8)))


def test_the_quick_check_flags_every_text_a_pattern_would_change() -> None:
    rng = random.Random(8)
    for _ in range(20_000):
        text = random_text(rng)
        if any(pattern.sub(replacement, text) != text for pattern, replacement in _PATTERNS):
            assert may_hold_credential(text), text


def test_a_message_and_its_fields_checked_together_read_as_each_redacted_alone() -> None:
    rng = random.Random(9)
    redact = Redactor([HELD_SECRET])
    for _ in range(5_000):
        message = random_text(rng)
        given = {random_text(rng): rng.choice([random_text(rng), 3, None, 0.5, True, ["x"]])}
        given[random_text(rng)] = random_text(rng)
        alone = {redact(str(name)): redact.value(value) for name, value in given.items()}
        assert redact.message_and_fields(message, given) == (redact(message), alone)


# --- The production handler: what reaches the stream, and when ------------------------------


@pytest.fixture
def log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """configure_logging(json_lines=True) on a real file as stderr; logging as it was after."""
    path = tmp_path / "broker.log"
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    touched = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "sse_starlette")
    saved = {
        name: (lg.handlers[:], lg.propagate, lg.disabled, lg.level)
        for name in touched
        for lg in [logging.getLogger(name)]
    }
    for flag in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, flag, getattr(logging, flag))
    with path.open("w", buffering=1, encoding="utf-8") as stream:
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stderr", stream)
            configure_logging(json_lines=True, level="INFO")
        try:
            yield path
        finally:
            root.handlers, _ = saved_root
            root.setLevel(saved_root[1])
            for name, (handlers, propagate, disabled, level) in saved.items():
                lg = logging.getLogger(name)
                lg.handlers, lg.propagate, lg.disabled = handlers, propagate, disabled
                lg.setLevel(level)


def test_a_secret_given_as_a_field_value_is_redacted_in_the_line_written_to_the_stream(
    log_file: Path,
) -> None:
    fields = {
        "route": "/v1/sessions",
        "status": 201,
        "note": f"failed with {HELD_SECRET}",
        "upstream": "wss://api.gladia.io/v2/live?token=abc123secret",
    }
    logger.info("%(route)s %(status)s", fields)
    logger.info("refused", extra={"fields": {"limit": "subject_live", "detail": HELD_SECRET}})
    text = log_file.read_text(encoding="utf-8")
    assert HELD_SECRET not in text
    assert "abc123secret" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == "/v1/sessions 201"
    assert (first["route"], first["status"]) == ("/v1/sessions", 201)
    assert first["note"] == f"failed with {REDACTED}"
    assert first["upstream"] == f"wss://{REDACTED}"
    assert (second["limit"], second["detail"]) == ("subject_live", REDACTED)


async def test_the_access_line_is_made_once_the_last_byte_is_handed_to_the_server(
    log_file: Path,
) -> None:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        scope["endpoint"] = endpoint
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        await send({"type": "http.response.body", "body": b"}"})

    seen_when_sent: list[str] = []

    async def send(message: Message) -> None:
        seen_when_sent.append(log_file.read_text(encoding="utf-8"))

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    metrics = Metrics()
    cors = CorsHeaders((), methods=["GET"], headers=[], expose=[], max_age_s=600)
    access = AccessLog({endpoint: "/v1/sessions/{session_id}"}, metrics)
    app = EdgeMiddleware(endpoint, access=access, cors=cors)
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/events/abc",  # not a guarded path: no attempt guard to set up
        "headers": [(b"x-request-id", b"req-ordering-1")],
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    # Not before the answer is whole, nor before its last byte is on its way (the server sends a
    # whole answer at once: server_protocol.py); then before the edge returns.
    assert seen_when_sent[1:] == ["", ""]
    entry = json.loads(log_file.read_text(encoding="utf-8"))
    assert (entry["request_id"], entry["route"], entry["status"]) == (
        "req-ordering-1",
        "/v1/sessions/{session_id}",
        200,
    )
    labels = {"method": "GET", "route": "/v1/sessions/{session_id}", "status": "200"}
    assert metrics.registry.get_sample_value("broker_http_requests_total", labels) == 1
