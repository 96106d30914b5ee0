"""Expiry of sessions that have no socket: unused URLs, and drops nobody resumed."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

from broker.simulator.config import SimulatorConfig
from broker.simulator.sessions import LiveSession


class Sweeper:
    """A deadline heap checked by one background task, so idle sessions cost no task each."""

    def __init__(self, config: SimulatorConfig, expire: Callable[[LiveSession], None]) -> None:
        self._config = config
        self._expire = expire
        self._heap: list[tuple[float, int, LiveSession]] = []
        self._order = itertools.count()

    def watch(self, session: LiveSession) -> None:
        """Check this session again when its current waiting deadline passes."""
        deadline = session.waiting_deadline(self._config)
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._order), session))

    def clear(self) -> None:
        """Forget every watched session."""
        self._heap.clear()

    def sweep(self, now: float) -> None:
        """Expire every session whose deadline passed; re-file those whose deadline moved."""
        while self._heap and self._heap[0][0] <= now:
            _, _, session = heapq.heappop(self._heap)
            deadline = session.waiting_deadline(self._config)
            if deadline is None:
                continue
            if deadline > now:
                heapq.heappush(self._heap, (deadline, next(self._order), session))
            else:
                self._expire(session)

    async def run(self) -> None:
        """Sweep forever at the configured interval."""
        while True:
            await asyncio.sleep(self._config.sweep_interval_s)
            self.sweep(time.monotonic())
