"""Scripts sent down one connection as they come, many to a write: the hot paths' Redis calls.

Every request on a hot path is one or two scripts (`EVALSHA`). Through redis-py's pool each one
pays a checkout and a release (locks, a timeout, observability hooks), a retry wrapper, and a
write and a read of its own: about 70 us of the broker's CPU for a lookup's one script
(docs/performance.md). Here, the scripts that arrive while a batch is at Redis wait in a queue
and go together in one write once it has answered. Redis answers them in order on the one
connection, so each script costs its share of a write and a read.

The broker's rules for Redis still hold:
- A script is sent once. When a batch's write or a read fails, every script of it not yet
  answered fails (503) and none is sent again: a timed-out write may have applied.
- Every read is bounded by the socket timeout, so a stalled Redis costs at most that.
- A caller that gives up (cancelled) leaves its reply to be read and dropped: the connection
  never holds a reply nobody will read.

Only `EVALSHA` comes here (`NodeClient` in `broker.store.connection`). Everything else, blocking
reads and transactions among it, uses the pool; this connection is one beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

_Queued = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


class ScriptPipeline:
    """One connection of `pool`'s kind, written by one task, a batch at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._connection: AbstractConnection | None = None
        self._queue: list[_Queued] = []
        self._pump: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """The reply to one command, sent with whatever else is waiting."""
        if self._closed:
            raise RedisConnectionError("the Redis client is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, future))
        if self._pump is None or self._pump.done():
            self._pump = loop.create_task(self._run(), name="broker-redis-script-pipeline")
        elif self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        return await future

    async def aclose(self) -> None:
        """Fail what waits, stop the task and close the connection."""
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        _fail(self._queue, RedisConnectionError("the Redis client is closed"))
        self._queue = []
        if self._connection is not None:
            await self._connection.disconnect()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
                self._wakeup = None
            batch = [queued for queued in self._queue if not queued[1].done()]
            self._queue = []
            if batch:
                await self._send(batch)

    async def _send(self, batch: list[_Queued]) -> None:
        if self._connection is None:
            self._connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        connection = self._connection
        answered = 0
        try:
            # `connect` as the pool calls it (Sentinel's connections find the master there);
            # the send then PINGs a connection idle past the health interval.
            await connection.connect()
            await connection.send_packed_command(_packed(connection, [args for args, _ in batch]))
            for _, future in batch:
                try:
                    reply = await connection.read_response()
                except ResponseError as refused:  # this script's own error; the rest read on
                    reply = refused
                answered += 1
                if future.done():
                    continue  # its caller gave up
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except BaseException as exc:
            # The connection may hold a half-written command or unread replies: never reuse it.
            await connection.disconnect(nowait=True)
            failure = exc if isinstance(exc, RedisError) else RedisConnectionError(repr(exc))
            _fail(batch[answered:], failure)
            if not isinstance(exc, Exception):
                raise  # cancelled: the client is closing


# Arguments hiredis writes exactly as redis-py's encoder would (UTF-8 text, decimal integers).
_PLAIN_ARGUMENTS = frozenset({str, bytes, int})


def _packed(connection: AbstractConnection, commands: list[tuple[Any, ...]]) -> list[bytes]:
    """The commands in Redis' protocol. redis-py encodes each argument in Python first: 30 us
    for a create's writes script (31 arguments), most of what this pipeline spends on it.
    hiredis packs text and integers itself in 7; other arguments (floats, memoryviews, the
    bools redis-py refuses) take redis-py's way."""
    if connection.encoder.encoding.lower() in ("utf-8", "utf8") and all(
        type(arg) in _PLAIN_ARGUMENTS for args in commands for arg in args
    ):
        return [hiredis.pack_command(args) for args in commands]
    return connection.pack_commands(commands)


def _fail(queued: list[_Queued], failure: RedisError) -> None:
    """Each waiting caller gets an exception of its own, so tracebacks do not pile onto one."""
    for _, future in queued:
        if not future.done():
            error = type(failure)(*failure.args)
            error.__cause__ = failure.__cause__
            future.set_exception(error)
