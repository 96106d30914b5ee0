"""SimulatorState: everything one simulator holds, and the handles tests use in-process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from broker.simulator.calls import CallLog, RecordedCall
from broker.simulator.config import SimulatorConfig
from broker.simulator.delivery import Deliverer, DeliveryRecord
from broker.simulator.faults import Fault, FaultKind, FaultRegistry
from broker.simulator.live import SessionEngine
from broker.simulator.sessions import LiveSession, SessionStore
from broker.simulator.sweeper import Sweeper
from broker.simulator.validation import ValidatedRequest

T = TypeVar("T")
# Sockets of sessions forgotten by reset() close with "going away": the SDKs do not reconnect.
RESET_CLOSE_CODE = 1001


class SimulatorState:
    """Sessions, recorded calls, faults and deliveries of one simulator (app.state.simulator)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.store = SessionStore(config)
        self.deliverer = Deliverer(config)
        self.engine = SessionEngine(config, self.store, self.deliverer)
        self.sweeper = Sweeper(config, self.store.sessions.get, self._expire)
        self.faults = FaultRegistry()
        self.call_log = CallLog(config.max_recorded_calls)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def sessions(self) -> dict[str, LiveSession]:
        """Sessions by id."""
        return self.store.sessions

    @property
    def calls(self) -> list[RecordedCall]:
        """Every REST call received (bar the /_simulator controls), oldest first."""
        return self.call_log.snapshot()

    @property
    def deliveries(self) -> list[DeliveryRecord]:
        """Outcomes of callbacks and webhooks, in the order they settled."""
        return list(self.deliverer.records)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the HTTP client and the sweeper (an app mounting the simulator enters this)."""
        self._loop = asyncio.get_running_loop()
        await self.deliverer.open()
        sweeper = self._loop.create_task(self.sweeper.run())
        try:
            yield
        finally:
            sweeper.cancel()
            tasks = [sweeper, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.deliverer.close()
            self._loop = None

    async def create_session(self, validated: ValidatedRequest, region: str | None) -> LiveSession:
        """Open a session (or 429) and announce it."""
        session = self.store.create(validated, region)
        self.sweeper.watch(session)
        await self.engine.start(session)
        return session

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run a background task owned by the simulator, cancelled at shutdown and reset."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def inject_fault(
        self,
        kind: FaultKind,
        *,
        method: str = "*",
        path: str = "*",
        count: int = 1,
        delay_s: float = 1.0,
        status: int = 500,
        retry_after: int | None = None,
        message: str | None = None,
        timeout_s: float | None = None,
    ) -> Fault:
        """Arm a fault for the next ``count`` REST calls matching ``method`` and ``path``."""
        fault = Fault(kind, method, path, count, delay_s, status, retry_after, message, timeout_s)
        self.faults.add(fault)
        return fault

    def disconnect(self, session_id: str, code: int = 4500) -> bool:
        """Force-close a session's live socket with ``code``; False without one (thread-safe)."""
        session = self.store.sessions.get(session_id)
        socket = session.socket if session is not None else None
        if socket is None:
            return False
        socket.request_close(code)
        return True

    def reset(self) -> None:
        """Forget sessions, calls, faults and pending deliveries (safe from any thread)."""
        self._in_loop(self._reset)

    def _reset(self) -> None:
        for session in self.store.clear():
            session.recording_ended = True
            if session.socket is not None:
                session.socket.request_close(RESET_CLOSE_CODE)
        self.sweeper.clear()
        self.faults.clear()
        self.call_log.clear()
        self.deliverer.cancel_all()
        self.deliverer.records.clear()
        for task in list(self._tasks):
            task.cancel()

    def _expire(self, session: LiveSession) -> None:
        if session.connected_once:
            self.spawn(self.engine.finish(session, stop_requested=False))
        else:
            self.engine.expire_unused(session)

    def _in_loop(self, function: Callable[[], T]) -> T:
        loop = self._loop
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if loop is None or current is loop:
            return function()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(function())
            except Exception as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(call)
        return done.result(timeout=10)
