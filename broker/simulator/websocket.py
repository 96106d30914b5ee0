"""The live socket at /v2/live?token=…: audio in, messages out, one socket per session at a time."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import json
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from broker.simulator import messages
from broker.simulator.sessions import LiveSession
from broker.simulator.state import SimulatorState

# A newer socket on the same session replaces this one. 4400-4499 is the range the SDKs never
# retry, so two clients sharing a URL do not evict each other forever.
REPLACED_CLOSE_CODE = 4409
FRAME_TOO_BIG_CLOSE_CODE = 1009
NORMAL_CLOSE_CODE = 1000
NO_STATUS_CODE = 1005


class _Next(enum.Enum):
    CONTINUE = enum.auto()
    STOP = enum.auto()
    TOO_BIG = enum.auto()


class LiveSocket:
    """The socket attached to a session; closes are requested from anywhere, done by its handler."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._loop = asyncio.get_running_loop()
        self.close_requested: asyncio.Future[int] = self._loop.create_future()
        self._closed = asyncio.Event()
        self._gone = False

    def request_close(self, code: int) -> None:
        """Ask the handler to close with ``code`` once the frame in hand is acknowledged."""
        self._loop.call_soon_threadsafe(self._resolve, code)

    def _resolve(self, code: int) -> None:
        if not self.close_requested.done():
            self.close_requested.set_result(code)

    async def send(self, text: str) -> None:
        """Send a text frame; a vanished client only silences the socket."""
        if self._gone:
            return
        try:
            await self._websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            self._gone = True

    async def close(self, code: int) -> None:
        """Close the socket with ``code`` unless the client already left."""
        if self._gone:
            return
        self._gone = True
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self._websocket.close(code)

    def mark_client_gone(self) -> None:
        """Note that the client closed or dropped the connection."""
        self._gone = True

    def mark_closed(self) -> None:
        """Note that the handler has finished with this socket."""
        self._closed.set()

    async def wait_closed(self, timeout_s: float) -> None:
        """Wait (bounded) until the handler has finished with this socket."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._closed.wait()


class LiveSocketEndpoint:
    """Serves the live sockets of every session of one simulator."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._config = state.config
        self._engine = state.engine

    async def serve(self, websocket: WebSocket) -> None:
        """Authenticate by token, take the session over, and run the conversation."""
        session = self._state.store.by_token(websocket.query_params.get("token", ""))
        if session is None or not await self._take_over(session):
            # Closing before accept makes the server refuse the upgrade with HTTP 403.
            await websocket.close()
            return
        # Claimed before the accept's await, so a concurrent connection sees it and replaces it.
        link = LiveSocket(websocket)
        session.socket = link
        try:
            await websocket.accept()
            session.connected_once = True
            session.last_activity_mono = time.monotonic()
            await self._converse(session, link, websocket)
        finally:
            if session.socket is link:
                session.socket = None
            link.mark_closed()
            self._state.sweeper.watch(session)

    async def _take_over(self, session: LiveSession) -> bool:
        for _ in range(3):
            if not session.accepts_connection:
                return False
            previous = session.socket
            if previous is None:
                return True
            previous.request_close(REPLACED_CLOSE_CODE)
            await previous.wait_closed(timeout_s=5.0)
        return False

    async def _converse(self, session: LiveSession, link: LiveSocket, websocket: WebSocket) -> None:
        receiving: asyncio.Task[Any] | None = None
        try:
            while True:
                if receiving is None:
                    receiving = asyncio.ensure_future(websocket.receive())
                remaining_s = session.live_deadline(self._config) - time.monotonic()
                done, _ = await asyncio.wait(
                    (receiving, link.close_requested),
                    timeout=max(remaining_s, 0.0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                # A frame already in hand is acknowledged before any requested close, so the
                # client's resume buffer matches what was counted.
                if receiving in done:
                    message, receiving = receiving.result(), None
                    if message["type"] == "websocket.disconnect":
                        link.mark_client_gone()
                        self._client_closed(session, message.get("code", NO_STATUS_CODE))
                        return
                    step = await self._frame(session, message)
                    if step is _Next.CONTINUE:
                        continue
                    if step is _Next.TOO_BIG:
                        await link.close(FRAME_TOO_BIG_CLOSE_CODE)
                        return
                    await self._engine.finish(session, stop_requested=True)
                    await link.close(NORMAL_CLOSE_CODE)
                    return
                if link.close_requested.done():
                    await link.close(link.close_requested.result())
                    return
                # Idle timeout or maximum duration: the session finishes as if stopped.
                await self._engine.finish(session, stop_requested=False)
                await link.close(NORMAL_CLOSE_CODE)
                return
        finally:
            if receiving is not None:
                receiving.cancel()
                await asyncio.gather(receiving, return_exceptions=True)

    def _client_closed(self, session: LiveSession, code: int) -> None:
        session.socket = None
        if code == NORMAL_CLOSE_CODE:
            # A client closing with 1000 means "stop": post-processing goes on without it.
            self._state.spawn(self._engine.finish(session, stop_requested=False))

    async def _frame(self, session: LiveSession, message: dict[str, Any]) -> _Next:
        data = message.get("bytes")
        if data is not None:
            if len(data) > self._config.max_frame_bytes:
                return _Next.TOO_BIG
            await self._engine.audio(session, data)
            return _Next.CONTINUE
        text = message.get("text") or ""
        if len(text) > self._config.max_frame_bytes:
            return _Next.TOO_BIG
        try:
            action = json.loads(text)
        except ValueError:
            action = None
        kind = action.get("type") if isinstance(action, dict) else None
        if kind == "stop_recording":
            return _Next.STOP
        if kind == "audio_chunk":
            assert isinstance(action, dict)
            chunk = _decode_chunk(action)
            if chunk is None:
                reason = "data.chunk must be a base64 string"
                await self._engine.emit(
                    session, messages.refused_ack(session.id, "audio_chunk", reason)
                )
            else:
                await self._engine.audio(session, chunk)
            return _Next.CONTINUE
        reason = "unknown message: expected audio_chunk or stop_recording"
        await self._engine.emit(session, messages.error(session.id, reason))
        return _Next.CONTINUE


def _decode_chunk(action: dict[str, Any]) -> bytes | None:
    data = action.get("data")
    chunk = data.get("chunk") if isinstance(data, dict) else None
    if not isinstance(chunk, str):
        return None
    try:
        return base64.b64decode(chunk, validate=True)
    except (binascii.Error, ValueError):
        return None
