"""Problem answers carry a stable `type` and a registered `reason`, documented for clients."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from broker import errors
from broker.web.problems import problem_catalog, problem_response, reasons
from broker.web.routes import problems

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"


def documented(column: str) -> set[str]:
    """The first column of the docs/api.md table headed `column`."""
    text = API_DOC.read_text()
    table = text.split(f"| `{column}` |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE))


def test_every_type_and_reason_is_documented_and_nothing_else() -> None:
    assert documented("type") == {entry["type"] for entry in problem_catalog().values()}
    assert documented("reason") == set(reasons())


def test_an_answer_names_its_type_and_reason() -> None:
    refused = errors.TooManyRequests("Wait", reason="live_per_subject", retry_after_s=3)
    body = problem_response(refused).body
    assert b'"type":"/problems/rate-limited"' in body
    assert b'"reason":"live_per_subject"' in body


def test_a_subclass_without_its_own_reason_answers_its_parents() -> None:
    assert errors.StoreUnavailable().reason == "store_unavailable"
    assert errors.MalformedWebhook().reason == "bad_request"
    assert errors.EarlierAttemptCreated().problem == "conflict"
    assert errors.EarlierAttemptCreated().reason == "idempotency_key_spent"


def test_an_unregistered_reason_is_caught_at_the_raise() -> None:
    with pytest.raises(AssertionError, match="unregistered problem reason"):
        errors.Forbidden("no", reason="made_up_here")


async def test_every_type_resolves_to_its_description() -> None:
    transport = httpx.ASGITransport(app=Starlette(routes=problems.routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
        listing = (await client.get("/problems")).json()
        assert listing["reasons"] == reasons()
        assert len(listing["types"]) == len(problem_catalog())
        for entry in listing["types"]:
            assert (await client.get(entry["type"])).json() == entry
