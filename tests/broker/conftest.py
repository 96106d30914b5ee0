"""Fixtures for the broker: settings with a canary key, the simulator on a real port, apps."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Secret

from broker.identity.credentials import TokenService
from broker.settings import Settings
from broker.simulator import SimulatorConfig, SimulatorState, create_simulator_app
from broker.web.app import create_app
from tests.support.servers import serve_in_thread

# Recognisable values: if one ever shows up in a response or a log record, a test fails.
CANARY_GLADIA_KEY = "canary-gladia-key-5b0f3c9e1d7a4e62b8c4"
CANARY_SECRET_KEY = "canary-broker-secret-8d2e6f1a9c3b5d7e0f4a"
CANARY_SERVICE_KEY = "canary-service-key-1e9d7c5b3a2f4e6d8c0b"
CANARIES = (CANARY_GLADIA_KEY, CANARY_SECRET_KEY, CANARY_SERVICE_KEY)


@dataclass
class Simulator:
    base_url: str
    state: SimulatorState

    def calls(self, method: str = "POST", path: str = "/v2/live") -> list[Any]:
        return [c for c in self.state.calls if c.method == method and c.path == path]


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[Simulator]:
    app = create_simulator_app(SimulatorConfig(api_key=CANARY_GLADIA_KEY, idle_timeout_s=5.0))
    with serve_in_thread(app) as base_url:
        yield Simulator(base_url=base_url, state=app.state.simulator)


@pytest.fixture
def simulator(simulator_server: Simulator) -> Simulator:
    """The simulator, forgotten sessions, calls and faults before each test."""
    simulator_server.state.reset()
    return simulator_server


@pytest.fixture(params=["redis-server", "redis-cluster"])
def redis_topology(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """Every broker test runs on one real redis-server and on a real three-master Cluster."""
    if request.param == "redis-cluster":
        return request.getfixturevalue("redis_cluster_url"), True
    return request.getfixturevalue("redis_url"), False


@pytest.fixture
def settings(simulator: Simulator, redis_topology: tuple[str, bool]) -> Settings:
    redis_url, redis_cluster = redis_topology
    return Settings(
        gladia_api_key=Secret(CANARY_GLADIA_KEY),
        gladia_api_url=simulator.base_url,
        gladia_total_timeout_s=2.0,
        gladia_read_timeout_s=1.5,
        redis_url=redis_url,
        redis_cluster=redis_cluster,
        secret_keys=(Secret(CANARY_SECRET_KEY),),
        service_keys=(Secret(CANARY_SERVICE_KEY),),
        public_url="https://broker.example",
        # Room for the flows these tests run; the limits' own tests set theirs.
        max_live_per_subject=10,
    )


# The fault tests' Redis timeouts (test_faults_redis.py, test_faults_cluster.py).
FAULT_SOCKET_TIMEOUT_S = 0.3


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """Short Redis timeouts; limits high enough that the load itself is never refused."""
    return replace(
        settings,
        redis_socket_timeout_s=FAULT_SOCKET_TIMEOUT_S,
        redis_connect_timeout_s=FAULT_SOCKET_TIMEOUT_S,
        redis_pool_timeout_s=FAULT_SOCKET_TIMEOUT_S,
        max_live_per_subject=1000,
        creates_per_minute=1000,
        account_max_live=1000,
    )


@pytest.fixture
def mint(settings: Settings) -> Callable[[str], dict[str, str]]:
    """Authorization headers for a user, signed with the test settings."""
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)

    def headers_for(subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.mint(subject).token}"}

    return headers_for


# Session URL tokens may appear only where the owner asks for the URL itself.
_URL_ROUTES = re.compile(r"^(POST /v1/sessions|GET /v1/sessions/[^/]+|POST /v2/live)$")
_UNREDACTED_TOKEN = re.compile(r"token=(?!\[redacted\])")


def _no_secret_in(response: httpx.Response) -> None:
    text = response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    route = f"{response.request.method} {response.request.url.path}"
    for canary in CANARIES:
        assert canary not in text, f"a secret reached the response of {route}"
    if not _URL_ROUTES.match(route):
        assert not _UNREDACTED_TOKEN.search(text), f"a session URL reached the response of {route}"


@asynccontextmanager
async def running_broker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A broker app with its lifespan running, and a client whose every answer is checked."""
    app: Starlette = create_app(settings)

    async def check(response: httpx.Response) -> None:
        await response.aread()
        _no_secret_in(response)

    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://broker.test",
                event_hooks={"response": [check]},
            )
        )
        yield client


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_broker(settings) as client:
        yield client


BrokerFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def broker_factory(settings: Settings) -> BrokerFactory:
    """Another instance sharing the same Redis, optionally with other settings."""

    def make(**changes: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return running_broker(replace(settings, **changes))

    return make


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every record logged during a broker test is searched for the canary secrets."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + str(getattr(record, "fields", ""))
        for canary in CANARIES:
            assert canary not in text, f"a secret reached the log: {record.name}"
        assert not _UNREDACTED_TOKEN.search(text), f"a session URL reached the log: {record.name}"
