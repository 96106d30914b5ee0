"""Who gets the /demo page, what it is told, and who may fetch a development token."""

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette

from broker.identity.credentials import TokenService
from broker.settings import Settings
from broker.web.app import create_app
from broker.web.routes.demo import SDK_BUNDLE, DemoOptions
from tests.broker.conftest import BrokerFactory
from tests.support.required import missing

DEV = DemoOptions(simulator=True, dev_token_subject="dev-user")


async def test_serve_has_no_demo_page_unless_the_setting_enables_it(
    broker: httpx.AsyncClient,
) -> None:
    for path in ("/demo", "/demo/", "/demo/app.js", "/demo/config.json"):
        assert (await broker.get(path)).status_code == 404
    assert (await broker.post("/demo/dev-token")).status_code == 404


async def test_with_broker_demo_serve_shows_the_page_but_hands_out_no_token(
    broker_factory: BrokerFactory,
) -> None:
    async with broker_factory(demo_enabled=True) as broker:
        page = await broker.get("/demo/")
        config = (await broker.get("/demo/config.json")).json()
        token = await broker.post("/demo/dev-token")
        redirect = await broker.get("/demo")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    simulator_sockets = config["gladia_origin"].replace("http://", "ws://")
    assert f"connect-src 'self' {simulator_sockets} wss://*.gladia.io;" in policy
    assert '<script src="/demo/app.js">' in page.text
    assert config["simulator"] is False
    assert config["dev_token"] is False
    assert config["gladia_origin"].startswith("http://127.0.0.1:")
    assert token.status_code == 405
    assert "token" not in token.text.lower().replace("dev-token", "")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "/demo/"


@pytest.fixture
def dev_app(settings: Settings) -> Starlette:
    return create_app(settings, DEV)


@pytest.fixture
def client_at(dev_app: Starlette) -> Callable[[str], httpx.AsyncClient]:
    """A client of the dev broker as seen from a given address."""

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=dev_app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://broker.test")

    return make


@pytest.fixture
async def running_dev_app(dev_app: Starlette) -> AsyncIterator[Starlette]:
    async with dev_app.router.lifespan_context(dev_app):
        yield dev_app


async def test_dev_mode_says_it_runs_on_the_simulator_and_gives_this_machine_a_token(
    running_dev_app: Starlette, client_at: Callable[[str], httpx.AsyncClient], settings: Settings
) -> None:
    async with client_at("127.0.0.1") as local:
        config = (await local.get("/demo/config.json")).json()
        minted = await local.post("/demo/dev-token")
    assert config["simulator"] is True
    assert config["dev_token"] is True
    assert minted.status_code == 201
    assert minted.headers["cache-control"] == "no-store"
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)
    assert tokens.verify(minted.json()["token"]).id == "dev-user"


@pytest.mark.parametrize("address", ["203.0.113.9", "192.168.1.20", "testclient"])
async def test_a_development_token_is_refused_to_any_other_machine(
    running_dev_app: Starlette, client_at: Callable[[str], httpx.AsyncClient], address: str
) -> None:
    async with client_at(address) as remote:
        refused = await remote.post("/demo/dev-token")
    assert refused.status_code == 403
    assert "token" not in refused.json()


@pytest.mark.parametrize(
    "path",
    ["/demo/package.json", "/demo/package-lock.json", "/demo/..%2Fapp.py", "/demo/node_modules"],
)
async def test_only_the_pages_own_files_are_served(
    broker_factory: BrokerFactory, path: str
) -> None:
    async with broker_factory(demo_enabled=True) as broker:
        assert (await broker.get(path)).status_code == 404


async def test_the_js_sdk_is_served_from_node_modules_as_installed(
    broker_factory: BrokerFactory,
) -> None:
    if not SDK_BUNDLE.is_file():
        missing("Gladia's JS SDK is not installed: run `make demo-assets` (needs npm)")
    async with broker_factory(demo_enabled=True) as broker:
        bundle = await broker.get("/demo/vendor/gladia-sdk.js")
        config = (await broker.get("/demo/config.json")).json()
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
    assert bundle.content == SDK_BUNDLE.read_bytes()
    assert config["sdk_version"] == "2.1.0"
