"""Expiry of sessions that have no socket: unused URLs, and drops nobody resumed."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable

from broker.simulator.config import SimulatorConfig
from broker.simulator.sessions import LiveSession


class Sweeper:
    """A deadline heap checked by one background task, so idle sessions cost no task each."""

    def __init__(
        self,
        config: SimulatorConfig,
        find: Callable[[str], LiveSession | None],
        expire: Callable[[LiveSession], None],
    ) -> None:
        self._config = config
        self._find = find
        self._expire = expire
        # Entries hold ids, not sessions: tuples of atoms are left alone by the garbage collector.
        self._heap: list[tuple[float, str]] = []

    def watch(self, session: LiveSession) -> None:
        """Check this session again when its current waiting deadline passes."""
        deadline = session.waiting_deadline(self._config)
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, session.id))

    def clear(self) -> None:
        """Forget every watched session."""
        self._heap.clear()

    def sweep(self, now: float) -> None:
        """Expire every session whose deadline passed; re-file those whose deadline moved."""
        while self._heap and self._heap[0][0] <= now:
            _, session_id = heapq.heappop(self._heap)
            session = self._find(session_id)
            deadline = None if session is None else session.waiting_deadline(self._config)
            if session is None or deadline is None:
                continue
            if deadline > now:
                heapq.heappush(self._heap, (deadline, session_id))
            else:
                self._expire(session)

    async def run(self) -> None:
        """Sweep forever at the configured interval."""
        while True:
            await asyncio.sleep(self._config.sweep_interval_s)
            self.sweep(time.monotonic())
