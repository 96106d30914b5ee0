"""No route reads a body past its cap: 413 as soon as the declared or streamed size exceeds it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.routing import Route

from broker.bounded_json import MAX_JSON_DEPTH
from broker.settings import Settings
from broker.web.app import build_routes
from tests.broker.conftest import CANARY_SERVICE_KEY

CHUNK = b"x" * 16_384
HUGE = 16 * 1024 * 1024


def body_routes() -> list[tuple[str, str]]:
    routes = []
    for route in build_routes():
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) & {"POST", "PUT", "PATCH"}):
                path = route.path.replace("{", "").replace("}", "")
                routes.append((method, path))
    return routes


class Counted:
    """A request body streamed in chunks, counting how much of it the server pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += len(CHUNK)
            yield CHUNK


def test_the_routes_with_a_body_are_known() -> None:
    assert ("POST", "/v1/sessions") in body_routes()
    assert ("POST", "/v1/tokens") in body_routes()


@pytest.mark.parametrize(("method", "path"), body_routes())
async def test_no_route_reads_a_huge_streamed_body_whole(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    settings: Settings,
    method: str,
    path: str,
) -> None:
    for headers in (mint("alice"), {"Authorization": f"Bearer {CANARY_SERVICE_KEY}"}, {}):
        body = Counted(HUGE)
        response = await broker.request(
            method, path, headers={**headers, "content-type": "application/json"}, content=body
        )
        assert response.status_code in (401, 404, 413)
        assert body.sent <= settings.max_body_bytes + 2 * len(CHUNK)


@pytest.mark.parametrize(
    ("path", "credential"),
    [("/v1/sessions", "user"), ("/v1/tokens", "service")],
)
async def test_an_oversized_body_is_413_by_its_declared_length_or_by_counting(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    settings: Settings,
    path: str,
    credential: str,
) -> None:
    auth = (
        mint("alice") if credential == "user" else {"Authorization": f"Bearer {CANARY_SERVICE_KEY}"}
    )
    headers = {**auth, "content-type": "application/json"}
    declared = await broker.post(
        path, headers={**headers, "content-length": str(HUGE)}, content=b"{}"
    )
    assert declared.status_code == 413
    streamed = Counted(HUGE)
    response = await broker.post(path, headers=headers, content=streamed)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert streamed.sent <= settings.max_body_bytes + 2 * len(CHUNK)


def nested_json(levels: int) -> bytes:
    return b'{"n":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


@pytest.mark.parametrize("path", ["/v1/sessions", "/v2/live"])
async def test_a_client_body_nested_deeper_than_the_bound_is_refused_saying_so(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]], path: str
) -> None:
    headers = {**mint("alice"), "content-type": "application/json"}
    shallow = b'{"language_config": ' + nested_json(MAX_JSON_DEPTH - 1) + b"}"
    deep = b'{"language_config": ' + nested_json(MAX_JSON_DEPTH) + b"}"
    refused_by_policy = await broker.post(path, headers=headers, content=shallow)
    assert "nested deeper" not in refused_by_policy.text
    answer = await broker.post(path, headers=headers, content=deep)
    assert answer.status_code == 400
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in answer.text
