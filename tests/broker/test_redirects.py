"""No URL the broker makes comes from the request's Host: a trailing slash is not a redirect."""

from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest

from broker.settings import Settings
from broker.web.app import create_app, create_metrics_app
from tests.broker.conftest import CANARY_SERVICE_KEY, BrokerFactory

Headers = Callable[[str], dict[str, str]]
HOSTILE_HOST = "evil.example"
PUBLIC_URL = "https://broker.example"
# Every route, with and without a trailing slash, and paths that look like another host.
PATHS = [
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/sessions/some-id"),
    ("GET", "/v1/sessions/some-id/result"),
    ("GET", "/v1/sessions/some-id/events"),
    ("DELETE", "/v1/sessions/some-id"),
    ("POST", "/v2/live"),
    ("GET", "/v2/live"),
    ("GET", "/v2/live/some-id"),
    ("GET", "/v2/live/some-id/file"),
    ("DELETE", "/v2/live/some-id"),
    ("POST", "/v1/tokens"),
    ("POST", "/v1/callbacks/some-capability"),
    ("POST", "/v1/webhooks/gladia"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/demo"),
    ("GET", "/demo/style.css"),
    ("GET", "/demo/config.json"),
]
SLASHED = [(method, path + "/") for method, path in PATHS]
ODD = [("GET", f"//{HOSTILE_HOST}/v1/sessions/"), ("GET", f"/\\{HOSTILE_HOST}/demo")]


@pytest.fixture
def redis_topology(redis_url: str) -> tuple[str, bool]:
    """What the Host header can do does not depend on Redis: the single server is enough."""
    return redis_url, False


def hostile(credentials: dict[str, str]) -> dict[str, str]:
    return {**credentials, "Host": HOSTILE_HOST, "X-Forwarded-Host": HOSTILE_HOST}


def assert_no_hostile_location(response: httpx.Response) -> None:
    location = response.headers.get("location")
    where = f"{response.request.method} {response.request.url.path}"
    if location is not None:
        assert HOSTILE_HOST not in location, f"{where} redirects to the client's host"
        assert location.startswith(PUBLIC_URL + "/") or (
            location.startswith("/") and not location.startswith(("//", "/\\"))
        ), f"{where} redirects to {location!r}"


@pytest.mark.parametrize("public_url", [PUBLIC_URL, None])
async def test_no_answer_names_the_host_the_client_chose(
    broker_factory: BrokerFactory, mint: Headers, public_url: str | None
) -> None:
    async with broker_factory(public_url=public_url, demo_enabled=True) as broker:
        for credentials in ({}, mint("alice"), {"Authorization": f"Bearer {CANARY_SERVICE_KEY}"}):
            for method, path in [*PATHS, *SLASHED, *ODD]:
                response = await broker.request(method, path, headers=hostile(credentials))
                assert_no_hostile_location(response)
                assert HOSTILE_HOST not in response.text, f"{method} {path} names the host"


async def test_a_trailing_slash_is_not_found_never_a_redirect(
    broker_factory: BrokerFactory, mint: Headers
) -> None:
    async with broker_factory(demo_enabled=True) as broker:
        for method, path in SLASHED:
            response = await broker.request(method, path, headers=hostile(mint("alice")))
            # `/demo/` is the page itself; every other slashed path is no route at all.
            assert response.status_code == (200 if path == "/demo/" else 404), path
            assert "location" not in response.headers, path


async def test_the_demo_redirect_is_relative(broker_factory: BrokerFactory) -> None:
    async with broker_factory(demo_enabled=True) as broker:
        response = await broker.get("/demo", headers={"Host": HOSTILE_HOST})
        assert response.status_code == 308
        assert response.headers["location"] == "/demo/"


async def test_without_a_public_url_the_list_links_are_relative(
    broker_factory: BrokerFactory, mint: Headers
) -> None:
    async with broker_factory(public_url=None) as broker:
        response = await broker.get("/v2/live", headers=hostile(mint("alice")))
        assert response.status_code == 200
        links = response.json()
        assert links["first"] == "/v2/live?offset=0&limit=20"
        assert links["current"] == "/v2/live?offset=0&limit=20"


async def test_the_metrics_port_does_not_redirect_either(settings: Settings) -> None:
    metrics_app = create_metrics_app(create_app(replace(settings, metrics_port=9100)))
    transport = httpx.ASGITransport(app=metrics_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        response = await client.get("/metrics/", headers={"Host": HOSTILE_HOST})
    assert response.status_code == 404
    assert "location" not in response.headers
