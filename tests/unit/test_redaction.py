"""The log redactor removes held secrets and credential-shaped text, and leaves the rest alone."""

import pytest

from broker.observability import REDACTED, Redactor

SECRET = "held-secret-value-1234"


@pytest.mark.parametrize(
    ("line", "leak"),
    [
        (f"failed with {SECRET} inside", SECRET),
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
    redacted = Redactor([SECRET])(line)
    assert leak not in redacted
    assert REDACTED in redacted


def test_an_ordinary_access_line_is_left_as_it_is() -> None:
    line = "GET /v1/sessions/{session_id} 200 0.42ms"
    assert Redactor([SECRET])(line) == line
