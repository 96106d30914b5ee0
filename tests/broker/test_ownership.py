"""Another user's session is indistinguishable from one that does not exist."""

import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.broker.conftest import Simulator

Headers = Callable[[str], dict[str, str]]


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/result"), ("DELETE", "")])
async def test_another_users_session_looks_missing(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, method: str, suffix: str
) -> None:
    created = (await broker.post("/v1/sessions", headers=mint("alice"), json={})).json()
    calls_before = len(simulator.state.calls)
    theirs = await broker.request(
        method, f"/v1/sessions/{created['id']}{suffix}", headers=mint("bob")
    )
    missing = await broker.request(
        method, f"/v1/sessions/{uuid.uuid4()}{suffix}", headers=mint("bob")
    )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    assert theirs.headers["content-type"] == missing.headers["content-type"]
    assert len(simulator.state.calls) == calls_before, "nothing of bob's reaches Gladia"


async def test_a_user_lists_only_their_own_sessions(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    await broker.post("/v1/sessions", headers=mint("alice"), json={})
    listing = await broker.get("/v1/sessions", headers=mint("bob"))
    assert listing.json() == {"items": [], "next_cursor": None}


async def test_a_deleted_attempt_by_another_user_leaves_the_session_intact(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    created = (await broker.post("/v1/sessions", headers=mint("alice"), json={})).json()
    await broker.delete(f"/v1/sessions/{created['id']}", headers=mint("bob"))
    found = await broker.get(f"/v1/sessions/{created['id']}", headers=mint("alice"))
    assert found.json()["url"] == created["url"]
