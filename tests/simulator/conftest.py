"""Fixtures of the simulator tests: in-process and real-port simulators, a callback receiver."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.simulator import SimulatorConfig, SimulatorState, create_simulator_app
from tests.support.servers import serve_in_thread

API_KEY = "simulator-test-key"
KEY_HEADERS = {"x-gladia-key": API_KEY}
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "simulator_config(**overrides): SimulatorConfig fields for this test"
    )


@pytest.fixture
def config(request: pytest.FixtureRequest) -> SimulatorConfig:
    """The simulator's settings: quick retries, overridable with @pytest.mark.simulator_config."""
    base = SimulatorConfig(api_key=API_KEY, callback_backoff_s=0.02, callback_timeout_s=2.0)
    marker = request.node.get_closest_marker("simulator_config")
    return replace(base, **marker.kwargs) if marker else base


@dataclass
class InProcess:
    """A simulator driven through ASGITransport, with its state at hand."""

    client: httpx.AsyncClient
    state: SimulatorState

    async def create(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post("/v2/live", json=body or {})
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
async def sim(config: SimulatorConfig) -> AsyncIterator[InProcess]:
    """An in-process simulator with its lifespan running."""
    app = create_simulator_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://simulator.test", headers=KEY_HEADERS
        ) as client:
            yield InProcess(client, app.state.simulator)


@dataclass
class LiveSimulator:
    """A simulator served by uvicorn on a loopback port."""

    base_url: str
    state: SimulatorState

    def client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=KEY_HEADERS, **options)

    async def create(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.client() as client:
            response = await client.post("/v2/live", json=body or {})
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def live(config: SimulatorConfig) -> Iterator[LiveSimulator]:
    """A simulator on a real port (for sockets, SDKs, faults and timeouts)."""
    app = create_simulator_app(config)
    with serve_in_thread(app) as base_url:
        yield LiveSimulator(base_url, app.state.simulator)


@dataclass(frozen=True)
class Received:
    """One POST that reached the receiver."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A tiny HTTP endpoint that records what it gets, and can fail the first N requests."""

    url: str = ""
    failures_left: int = 0
    delay_s: float = 0.0
    attempts: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: Request) -> Response:
        received = Received(request.url.path, dict(request.headers), await request.body())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        with self.lock:
            self.attempts.append(received)
            if self.failures_left > 0:
                self.failures_left -= 1
                return Response(status_code=500)
            self.accepted.append(received)
        return Response(status_code=204)

    def events(self) -> list[str]:
        return [r.json["event"] for r in self.accepted]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A callback / webhook receiver on a real port."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    with serve_in_thread(app) as base_url:
        receiver.url = base_url
        yield receiver


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


async def eventually(
    predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """Await until ``predicate`` holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def until_true(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """Await an async check until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
