"""Bad input is a 4xx that says what is wrong, never a 500, and reaches nothing upstream."""

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.broker.conftest import BrokerFactory, Simulator


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
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    headers = {**mint("alice"), "content-type": "application/json"}
    response = await broker.post("/v1/sessions", headers=headers, content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"callback_config": {"url": "https://evil.example/steal"}}, "callback_config"),
        ({"custom_metadata": {"user": {"name": "x"}}}, "custom_metadata.user"),
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


# --- Every POST route, any body: a 4xx that names the problem, never a 5xx ------------------

SERVICE = {"Authorization": "Bearer canary-service-key-1e9d7c5b3a2f4e6d8c0b"}
POST_ROUTES = ["/v1/sessions", "/v1/tokens"]


def _auth_for(route: str, mint: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return SERVICE if route == "/v1/tokens" else mint("alice")


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"sub": ', "application/json", 400),
        (b"\xff\xfe{}", "application/json", 400),
        (b'{"sub": "\xc3\x28"}', "application/json", 400),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", 400),
        (b'{"a": ' * 5_000 + b"1" + b"}" * 5_000, "application/json", 400),
        (b'{"sub": 1' + b"0" * 5_000 + b"}", "application/json", 400),
        (b"sub=alice", "application/x-www-form-urlencoded", 415),
        (b"<sub>alice</sub>", "application/xml", 415),
        (b'{"sub": "alice"}', "", 415),
        (b"[]", "application/json", 422),
        (b'"alice"', "application/json", 422),
        (b"null", "application/json", 422),
        (b"12", "application/json", 422),
    ],
)
async def test_unreadable_or_misdeclared_bodies_are_refused_on_every_post_route(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    simulator: Simulator,
    route: str,
    content: bytes,
    content_type: str,
    status: int,
) -> None:
    headers = {**_auth_for(route, mint), "content-type": content_type}
    response = await broker.post(route, headers=headers, content=content)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem.get("detail") or problem.get("errors"), "nothing a person can act on"
    assert simulator.calls() == []


@pytest.mark.parametrize("route", POST_ROUTES)
async def test_an_oversized_body_is_413_on_every_post_route(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], route: str
) -> None:
    body = b'{"sub": "' + b"x" * 70_000 + b'"}'
    headers = {**_auth_for(route, mint), "content-type": "application/json"}
    response = await broker.post(route, headers=headers, content=body)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {"channels": 1e999},
        {"endpointing": float("nan")},
        {"sample_rate": -0.0},
        {"language_config": {"languages": ["en"] * 11}},
        {"language_config": {"languages": "en"}},
        {"messages_config": {"receive_acknowledgments": False}},
        {"encoding": "wav/alaw", "bit_depth": 16},
        {"region": "mars-1"},
        {"channels": True},
    ],
)
async def test_values_outside_the_allow_list_are_422_naming_the_field(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    simulator: Simulator,
    body: dict[str, object],
) -> None:
    headers = {**mint("alice"), "content-type": "application/json"}
    content = json.dumps(body).encode()  # NaN and Infinity as Python writes them
    response = await broker.post("/v1/sessions", headers=headers, content=content)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].split(".")[0] in body
    assert simulator.calls() == []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(content=st.binary(max_size=300), route=st.sampled_from(POST_ROUTES))
async def test_any_bytes_posted_as_json_get_an_answer_below_500(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    content: bytes,
    route: str,
) -> None:
    headers = {**_auth_for(route, mint), "content-type": "application/json"}
    response = await broker.post(route, headers=headers, content=content)
    assert response.status_code < 500 or response.status_code in (502, 503, 504)
    assert response.status_code != 500


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(credential=st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=200))
async def test_any_credential_is_a_401_never_a_crash(
    patient_broker: httpx.AsyncClient, credential: str
) -> None:
    headers = {b"Authorization": b"Bearer " + credential.encode("latin-1")}
    response = await patient_broker.get("/v1/sessions", headers=headers)
    assert response.status_code == 401


@pytest.fixture
async def patient_broker(broker_factory: BrokerFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A broker that does not slow down one address's many failed attempts (the guard would)."""
    async with broker_factory(failed_attempts_per_minute=1_000_000) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/sessions", "GET, HEAD, POST"),
        ("PATCH", "/v1/sessions/some-id", "DELETE, GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
async def test_a_wrong_method_names_every_method_of_the_path(
    broker: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await broker.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
