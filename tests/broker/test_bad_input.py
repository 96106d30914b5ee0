"""Bad input is a 4xx that says what is wrong, never a 500, and reaches nothing upstream."""

from collections.abc import Callable

import httpx
import pytest

from tests.broker.conftest import Simulator


async def test_malformed_json_is_400(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], simulator: Simulator
) -> None:
    headers = {**mint("alice"), "content-type": "application/json"}
    response = await broker.post("/v1/sessions", headers=headers, content=b'{"encoding": ')
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]
    assert simulator.calls() == []


@pytest.mark.parametrize(
    ("content", "detail"),
    [(b"\xff\xfe{}", "UTF-8"), (b"[" * 30_000 + b"]" * 30_000, "nested")],
)
async def test_undecodable_or_deeply_nested_bodies_are_400(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], content: bytes, detail: str
) -> None:
    headers = {**mint("alice"), "content-type": "application/json"}
    response = await broker.post("/v1/sessions", headers=headers, content=content)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


async def test_a_body_that_is_not_json_is_415(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]]
) -> None:
    headers = {**mint("alice"), "content-type": "text/plain"}
    response = await broker.post("/v1/sessions", headers=headers, content=b"encoding=wav")
    assert response.status_code == 415


async def test_an_oversized_body_is_413_before_it_is_read(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], simulator: Simulator
) -> None:
    body = b'{"padding": "' + b"x" * 70_000 + b'"}'
    headers = {**mint("alice"), "content-type": "application/json"}
    response = await broker.post("/v1/sessions", headers=headers, content=body)
    assert response.status_code == 413
    assert simulator.calls() == []


async def test_an_oversized_chunked_body_is_413(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]]
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 1024

    headers = {**mint("alice"), "content-type": "application/json"}
    response = await broker.post("/v1/sessions", headers=headers, content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"callback_config": {"url": "https://evil.example/steal"}}, "callback_config"),
        ({"custom_metadata": {"user": "x"}}, "custom_metadata"),
        ({"callback": True}, "callback"),
        ({"post_processing": {"summarization": True}}, "post_processing.summarization"),
        ({"sample_rate": 12345}, "sample_rate"),
    ],
)
async def test_forbidden_or_unknown_fields_are_422_and_never_reach_gladia(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    simulator: Simulator,
    body: dict[str, object],
    field: str,
) -> None:
    response = await broker.post("/v1/sessions", headers=mint("alice"), json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert simulator.calls() == []


@pytest.mark.parametrize("limit", ["0", "101", "ten", "-1"])
async def test_a_bad_page_size_is_400(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], limit: str
) -> None:
    response = await broker.get("/v1/sessions", headers=mint("alice"), params={"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize("cursor", ["nonsense", "1.5", "inf:abc", ":"])
async def test_a_forged_cursor_is_400(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], cursor: str
) -> None:
    response = await broker.get("/v1/sessions", headers=mint("alice"), params={"cursor": cursor})
    assert response.status_code == 400


async def test_unknown_routes_and_methods_answer_problem_details(broker: httpx.AsyncClient) -> None:
    missing = await broker.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong_method = await broker.put("/v1/sessions")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/sessions", "limit=%C2%B2"),
        ("/v2/live", "limit=%C2%B2"),
        ("/v2/live", "offset=99999999999999999999"),
        ("/v1/sessions/any-id/events", "after=99999999999999999999-0"),
    ],
)
async def test_odd_numbers_in_a_query_are_a_400_not_a_500_or_503(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], path: str, query: str
) -> None:
    alice = mint("alice")
    if "events" in path:
        created = (await broker.post("/v1/sessions", headers=alice, json={})).json()
        path = path.replace("any-id", created["id"])
    response = await broker.get(f"{path}?{query}", headers=alice)
    assert response.status_code == 400
