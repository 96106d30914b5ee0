"""Pure ASGI middleware: record every REST call, then apply any fault armed for it."""

from __future__ import annotations

import asyncio
import json

from starlette._utils import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.simulator.calls import CallLog, RecordedCall
from broker.simulator.config import SimulatorConfig
from broker.simulator.errors import REASONS, envelope
from broker.simulator.faults import Fault, FaultRegistry
from broker.simulator.timestamps import iso_now

CONTROL_PREFIX = "/_simulator"


class CallsAndFaults:
    """Records REST calls and applies faults; the /_simulator controls are never touched."""

    def __init__(
        self, app: ASGIApp, config: SimulatorConfig, calls: CallLog, faults: FaultRegistry
    ) -> None:
        self.app = app
        self.config = config
        self.calls = calls
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = get_route_path(scope) if scope["type"] == "http" else ""
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        self.calls.append(_record(scope, path, body))
        replay = _replaying(body, receive)
        fault = self.faults.take(scope["method"], path)
        if fault is None:
            await self.app(scope, replay, send)
        else:
            await self._apply(fault, scope, receive, replay, send)

    async def _apply(
        self, fault: Fault, scope: Scope, receive: Receive, replay: Receive, send: Send
    ) -> None:
        hold_s = self.config.fault_timeout_s if fault.timeout_s is None else fault.timeout_s
        if fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
            await self.app(scope, replay, send)
        elif fault.kind == "timeout":
            if not await _hold(receive, hold_s):
                await self.app(scope, replay, send)
        elif fault.kind == "status":
            await _send_status(fault, scope, send)
        elif fault.kind == "drop":
            # Promise a body, deliver part of it, and stop: the server then cuts the connection.
            headers = [(b"content-type", b"application/json"), (b"content-length", b"1024")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        else:
            # timeout_after_create: the work is really done, but its answer never leaves.
            await self.app(scope, replay, _swallow)
            await _hold(receive, hold_s)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _record(scope: Scope, path: str, body: bytes) -> RecordedCall:
    query = scope.get("query_string", b"").decode("latin-1")
    return RecordedCall(scope["method"], path, query, tuple(scope["headers"]), body, iso_now())


async def _hold(receive: Receive, seconds: float) -> bool:
    """Wait until the client gives up or ``seconds`` pass; True when the client went away."""
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


async def _send_status(fault: Fault, scope: Scope, send: Send) -> None:
    message = fault.message or REASONS.get(fault.status, "Error")
    body = json.dumps(envelope(scope["path"], fault.status, message, None)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if fault.retry_after is not None:
        headers.append((b"retry-after", str(fault.retry_after).encode()))
    await send({"type": "http.response.start", "status": fault.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _swallow(message: Message) -> None:
    return None
