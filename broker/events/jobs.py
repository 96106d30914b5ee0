"""Background work shared by every instance: Redis job queues and the loop that drains one.

A queue member names one unit of work (one session's result fetch, one session's relay). Each
instance's runner takes due members under a per-member lease, so one instance at a time works
on a member (and a session's relay stays in order); a lease left by a dead instance expires and
another runner takes over. Work that fails is pushed back with capped exponential backoff; work
a handler gives up on is parked (`EventStore.dead_letter`) until an operator replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from redis.exceptions import RedisError

from broker.store.events import EventStore

logger = logging.getLogger("broker.jobs")


def job_member(owner: str, session_id: str) -> str:
    """The queue member naming one session's work."""
    return f"{owner}:{session_id}"


def split_member(member: str) -> tuple[str, str]:
    owner, _, session_id = member.partition(":")
    return owner, session_id


class JobOutcome(Enum):
    DONE = "done"  # nothing left: off the queue, unless more arrived meanwhile
    MORE = "more"  # progress made and more is waiting: stay due
    LATER = "later"  # failed: try again after a backoff
    PARKED = "parked"  # given up on by the handler (a dead letter): left where it put it


class Lease:
    """A runner's hold on one member; long work renews it between steps."""

    def __init__(self, store: EventStore, queue: str, member: str, lease_s: float) -> None:
        self._store = store
        self._queue = queue
        self._member = member
        self._lease_s = lease_s
        self.token = uuid.uuid4().hex

    async def acquire(self) -> bool:
        return await self._store.lock(self._queue, self._member, self.token, self._lease_s)

    async def renew(self) -> bool:
        return await self._store.renew(self._queue, self._member, self.token, self._lease_s)

    async def release(self) -> None:
        await self._store.release(self._queue, self._member, self.token)


Handler = Callable[[str, Lease], Awaitable[JobOutcome]]


@dataclass(frozen=True)
class QueuePolicy:
    """How one queue's work is paced."""

    lease_s: float
    backoff_s: float
    max_backoff_s: float
    max_tries: int | None = None
    concurrency: int = 16


class JobRunner:
    """Drains one queue on this instance until stopped."""

    def __init__(
        self,
        store: EventStore,
        queue: str,
        handler: Handler,
        policy: QueuePolicy,
        poll_s: float,
    ) -> None:
        self._store = store
        self._queue = queue
        self._handler = handler
        self._policy = policy
        self._poll_s = poll_s
        self._wakeup = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        """Finish the current round and leave the loop."""
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        # A flag as well as cancellation: redis-py 8.1 can swallow a task's cancellation when it
        # lands during a command (the command returns normally), which would leave this loop
        # running through every later `asyncio.timeout` as if nothing had happened.
        while not self._stopping:
            self._wakeup.clear()
            worked = False
            try:
                due = await self._store.due(self._queue, self._policy.concurrency)
                if due:
                    results = await asyncio.gather(*(self._work(m, g) for m, g in due))
                    worked = any(results)
            except RedisError as exc:
                logger.warning("job queue %s: redis failed: %s", self._queue, type(exc).__name__)
            if not worked:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_s):
                        await self._wakeup.wait()

    async def _work(self, member: str, generation: str) -> bool:
        lease = Lease(self._store, self._queue, member, self._policy.lease_s)
        if not await lease.acquire():
            return False  # another instance holds it
        try:
            try:
                outcome = await self._handler(member, lease)
            except RedisError:
                raise
            except Exception as exc:
                # A failing job must not stop the queue; it is retried with backoff.
                logger.error("job %s failed: %s", self._queue, type(exc).__name__)
                outcome = JobOutcome.LATER
            if outcome is JobOutcome.DONE:
                await self._store.finish(self._queue, member, generation)
            elif outcome is JobOutcome.LATER:
                tries = await self._store.retry_later(
                    self._queue, member, self._policy.backoff_s, self._policy.max_backoff_s
                )
                if self._policy.max_tries is not None and tries >= self._policy.max_tries:
                    logger.warning("job %s gave up after %d tries", self._queue, tries)
                    await self._store.finish(self._queue, member, generation)
        finally:
            await lease.release()
        return True


class BackgroundJobs:
    """The runners of one instance, started and stopped with the app's lifespan."""

    def __init__(self, runners: list[JobRunner]) -> None:
        self._runners = runners
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(runner.run()) for runner in self._runners]

    async def stop(self) -> None:
        for runner in self._runners:
            runner.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
