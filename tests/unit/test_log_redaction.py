"""The one redaction layer: every record, every part of it, as it is made."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.datastructures import Secret

from broker.identity import TokenService
from broker.observability import REDACTED, JsonFormatter, Redactor, install_redaction

HELD_SECRET = "held-secret-value-4f1c9a7e2b"
logger = logging.getLogger("broker.test")


@pytest.fixture(autouse=True)
def redaction(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction([HELD_SECRET])
    caplog.set_level(logging.DEBUG, logger="broker.test")


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
    record = caplog.records[-1]
    assert record.fields == {"route": "/v1/sessions", "status": 200, "note": f"with {REDACTED}"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["status"] == 200
    assert entry["message"] == "/v1/sessions 200"
    assert HELD_SECRET not in json.dumps(entry)


def test_fields_given_through_extra_pass_through_the_same_layer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger.info("refused", extra={"fields": {"limit": "subject_live", "note": HELD_SECRET}})
    record = caplog.records[-1]
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
