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
- A batch, from its write to its last reply, is bounded by the socket timeout, so a stalled
  Redis costs at most that. The connection itself has none: redis-py would otherwise start a
  task for every write (`asyncio.wait_for`) and a timeout for every reply.
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
from redis.exceptions import TimeoutError as RedisTimeoutError

# Arguments hiredis writes exactly as redis-py's encoder would (UTF-8 text, decimal integers).
_PLAIN_ARGUMENTS = frozenset({str, bytes, int})

# A command as it goes on the wire, and its caller's reply.
_Queued = tuple[bytes, "asyncio.Future[Any]"]


class ScriptPipeline:
    """One connection of `pool`'s kind, written by one task, a batch at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        options = pool.connection_kwargs
        self._timeout_s: float | None = options.get("socket_timeout")
        # Made now, connected by the first batch. It has no socket timeout of its own: the
        # batch's deadline bounds it (see above).
        self._connection: AbstractConnection = pool.connection_class(
            **{**options, "socket_timeout": None}
        )
        self._encoder = self._connection.encoder
        self._hiredis_packs = self._encoder.encoding.lower() in ("utf-8", "utf8")
        self._queue: list[_Queued] = []
        self._pump: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """The reply to one command, sent with whatever else is waiting."""
        if self._closed:
            raise RedisConnectionError("the Redis client is closed")
        # Packed here, so an argument redis-py refuses fails its own caller (DataError) alone.
        command = self._packed(args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        if self._pump is None or self._pump.done():
            self._pump = loop.create_task(self._run(), name="broker-redis-script-pipeline")
        elif self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        return await future

    def _packed(self, args: tuple[Any, ...]) -> bytes:
        """A command in Redis' protocol. redis-py encodes each argument in Python first: 30 us
        for a create's writes script (31 arguments), most of what this pipeline spent on it.
        hiredis packs text and integers itself, in 7; only other arguments (floats, and the
        bools redis-py refuses) go through redis-py's encoder first."""
        if not self._hiredis_packs:
            return b"".join(self._connection.pack_command(*args))
        if not all(type(arg) in _PLAIN_ARGUMENTS for arg in args):
            args = tuple(
                arg if type(arg) in _PLAIN_ARGUMENTS
                else bytes(arg) if isinstance(arg, bytearray | memoryview)
                else self._encoder.encode(arg)  # type: ignore[no-untyped-call]
                for arg in args
            )  # fmt: skip
        packed: bytes = hiredis.pack_command(args)
        return packed

    async def aclose(self) -> None:
        """Fail what waits, stop the task and close the connection."""
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        _fail(self._queue, RedisConnectionError("the Redis client is closed"))
        self._queue = []
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
        connection = self._connection
        answered = 0
        try:
            # `connect` as the pool calls it (Sentinel's connections find the master there);
            # the send then PINGs a connection idle past the health interval.
            async with asyncio.timeout(self._timeout_s):  # the handshake of a new one too
                await connection.connect()  # type: ignore[no-untyped-call]
                await connection.send_packed_command([command for command, _ in batch])
                for _, future in batch:
                    try:
                        reply = await connection.read_response()
                    except ResponseError as refused:  # this script's own; the rest read on
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
            failure = _as_redis_error(exc)
            _fail(batch[answered:], failure)
            if not isinstance(exc, Exception):
                raise  # cancelled: the client is closing


def _as_redis_error(exc: BaseException) -> RedisError:
    if isinstance(exc, RedisError):
        return exc
    if isinstance(exc, TimeoutError):  # the batch's own deadline
        return RedisTimeoutError("Timeout reading from Redis")
    return RedisConnectionError(repr(exc))


def _fail(queued: list[_Queued], failure: RedisError) -> None:
    """Each waiting caller gets an exception of its own, so tracebacks do not pile onto one."""
    for _, future in queued:
        if not future.done():
            error = type(failure)(*failure.args)
            error.__cause__ = failure.__cause__
            future.set_exception(error)
