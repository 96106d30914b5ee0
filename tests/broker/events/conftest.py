"""Fixtures for callbacks, webhooks, events and the relay: brokers Gladia can reach, a receiver."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
import redis
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.settings import Settings
from broker.web.app import create_app
from broker.web.resources import Resources
from tests.broker.conftest import Simulator, _no_secret_in
from tests.support.servers import free_port, serve_in_thread

RELAY_SECRET = "whsec_" + base64.b64encode(b"relay-test-secret-0123456789abcdef").decode()
# A capability may appear in logs only as the route template or redacted.
_LOGGED_CAPABILITY = re.compile(r"/v1/callbacks/(?!\{capability\}|\[redacted\])")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Quick background work for tests; everything else as in the broker's tests."""
    return replace(
        settings,
        worker_poll_s=0.05,
        relay_backoff_s=0.05,
        relay_max_backoff_s=0.2,
        relay_timeout_s=2.0,
        sse_heartbeat_s=0.2,
    )


@pytest.fixture(autouse=True)
def no_capability_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert not _LOGGED_CAPABILITY.search(text), f"a capability reached the log: {record.name}"


async def _check(response: httpx.Response) -> None:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return  # read as it streams by the test; checked there
    await response.aread()
    _no_secret_in(response)


@dataclass
class ServedBroker:
    """A broker under uvicorn on a loopback port that it names as its public URL."""

    base_url: str
    client: httpx.AsyncClient
    app: Starlette

    @property
    def resources(self) -> Resources:
        found: Resources = self.app.state.resources
        return found


@asynccontextmanager
async def serving(settings: Settings, port: int | None = None) -> AsyncIterator[ServedBroker]:
    port = port or free_port()
    app = create_app(replace(settings, public_url=f"http://127.0.0.1:{port}"))
    with serve_in_thread(app, port=port) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, event_hooks={"response": [_check]}, timeout=10
        ) as client:
            yield ServedBroker(base_url, client, app)


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[ServedBroker]:
    async with serving(settings) as broker:
        yield broker


@dataclass
class InProcess:
    """A broker in this test's event loop, with its resources at hand."""

    client: httpx.AsyncClient
    resources: Resources


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[InProcess]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://broker.test",
            event_hooks={"response": [_check]},
        ) as client,
    ):
        yield InProcess(client, app.state.resources)


@dataclass
class Receiver:
    """The app's backend: verifies every relay delivery with the reference library."""

    base_url: str
    failures_left: int = 0
    accepted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refused: int = 0
    unverified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [message_id for message_id, _ in self.accepted]

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for _, body in self.accepted]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    async def deliver(request: Request) -> Response:
        found = state["receiver"]
        body = await request.body()
        try:
            payload = Webhook(RELAY_SECRET).verify(body, dict(request.headers))
        except Exception:
            with found.lock:
                found.unverified += 1
            return Response(status_code=401)
        with found.lock:
            if found.failures_left > 0:
                found.failures_left -= 1
                found.refused += 1
                return Response(status_code=503)
            found.accepted.append((request.headers["webhook-id"], payload))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hooks/gladia", deliver, methods=["POST"])])
    with serve_in_thread(app) as base_url:
        state["receiver"] = Receiver(base_url=base_url)
        yield state["receiver"]


def relay_settings(settings: Settings, receiver: Receiver) -> Settings:
    return replace(
        settings, relay_url=f"{receiver.base_url}/hooks/gladia", relay_secret=Secret(RELAY_SECRET)
    )


def redis_snapshot(redis_url: str) -> dict[bytes, bytes | None]:
    """Every key and its serialised value, to prove a request changed nothing."""
    client = redis.Redis.from_url(redis_url)
    try:
        snapshot: dict[bytes, bytes | None] = {}
        for key in client.keys("*"):
            assert isinstance(key, bytes), "a client without decode_responses answers bytes"
            snapshot[key] = client.dump(key)
        return snapshot
    finally:
        client.close()


def queued(redis_url: str, queue: str) -> int:
    """How many members wait on a background job queue."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.zcard(f"broker:{{jobs}}:{queue}:due"))
    finally:
        client.close()


def callback_body(session_id: str, event: str, **data: Any) -> dict[str, Any]:
    """A callback as Gladia sends it: `{id, event, payload: <the WebSocket message>}`."""
    message_type = event.removeprefix("live.")
    payload: dict[str, Any] = {
        "session_id": session_id,
        "created_at": "2026-11-25T10:00:00.000Z",
        "type": message_type,
    }
    if data:
        payload["data"] = data
    return {"id": session_id, "event": event, "payload": payload}


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 10) -> None:
    """Poll `condition` until it holds, failing after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.02)


def capability_path(simulator: Simulator, session_id: str) -> str:
    """The path of a session's callback URL, as the broker gave it to Gladia."""
    url: str = simulator.state.sessions[session_id].params["callback_config"]["url"]
    return "/v1/callbacks/" + url.rsplit("/", 1)[1]


Headers = Callable[[str], dict[str, str]]


async def follow(broker: ServedBroker, url: str, headers: dict[str, str], lines: list[str]) -> None:
    async with broker.client.stream(
        "GET", url, headers={"accept": "text/event-stream", **headers}, timeout=20
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(line)


def received_in(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]
