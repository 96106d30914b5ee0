"""Waiting, in tests, for what the broker does in the background (jobs, expiries, windows)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    """Poll `check` until it holds; fail after `within_s`."""
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
