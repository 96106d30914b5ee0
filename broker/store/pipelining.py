"""Scripts written down one connection as they come, replies read as they arrive: the hot
paths' Redis calls.

Every request on a hot path is one or two scripts (`EVALSHA`). Through redis-py's pool each one
pays a checkout and a release (locks, a timeout, observability hooks), a retry wrapper, and a
read through an `asyncio.StreamReader` (docs/performance.md). Here a script is written to the
socket by its caller: at once when nothing else is in flight, else with the other scripts of
its turn of the event loop in one write. Its reply is parsed where the bytes arrive (the
connection's protocol, with hiredis' parser) and handed to the caller's future: one wake-up of
the caller, and no task of the pipeline's own between the two. Redis answers in order on the one
connection, so the replies are matched to the callers first in, first out, and scripts in
flight at once share the socket's reads.

The connection is opened by redis-py, as the pool would open it (TLS, `AUTH`, `SELECT`, the
client's name, Sentinel's master), and then read and written here.

The broker's rules for Redis still hold:
- A script is sent once. When the connection fails or a reply is late, every script on it not
  yet answered fails (503) and none is sent again: a timed-out write may have applied.
- Each script is bounded by the socket timeout, from its write to its reply, so a stalled
  Redis costs at most that; opening a connection is bounded by it too.
- A connection found closed before a script is written is replaced: nothing was sent on it.
  One whose server answered as a replica would is replaced after that answer.
  One idle for longer than the health-check interval is checked with `PING` first, as redis-py
  checks its own, and replaced if the `PING` fails.
- A caller that gives up (cancelled) leaves its reply to be read and dropped: the connection
  never holds a reply nobody will read.

Only `EVALSHA` comes here (`NodeClient` in `broker.store.connection`). Everything else, blocking
reads and transactions among it, uses the pool; this connection is one beside it.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Arguments hiredis writes exactly as redis-py's encoder would (UTF-8 text, decimal integers,
# floats as `repr` writes them).
_PLAIN_ARGUMENTS = frozenset({str, bytes, int, float})
_PING = hiredis.pack_command(("PING",))
# hiredis' answer when a reply is not complete yet (its default, False, is a RESP3 value).
_INCOMPLETE = object()
# Out-of-band frames of RESP3 (hiredis 3.2 and later): no command's reply.
_PUSH: Any = getattr(hiredis, "PushNotification", ())


class ScriptPipeline:
    """One connection of `pool`'s kind, shared by every script in flight."""

    def __init__(self, pool: ConnectionPool) -> None:
        options = pool.connection_kwargs
        self._options = options
        self._timeout_s: float | None = options.get("socket_timeout")
        self._health_check_s: float = options.get("health_check_interval") or 0
        self._connection_class = pool.connection_class
        # Never connected: it packs and encodes commands as the pool's connections would.
        self._packer = pool.connection_class(**options)
        self._encoder = self._packer.encoder
        self._hiredis_packs = self._encoder.encoding.lower() in ("utf-8", "utf8")
        self._link: _Link | None = None
        self._readying: asyncio.Task[_Link] | None = None
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """The reply to one command, written now down the shared connection."""
        if self._closed:
            raise RedisConnectionError("the Redis client is closed")
        # Packed here, so an argument redis-py refuses fails its own caller (DataError) alone.
        command = self._packed(args)
        link = self._link
        if link is None or not link.ready(self._health_check_s):
            link = await self._ready()
        return await link.send(command)

    def _packed(self, args: tuple[Any, ...]) -> bytes:
        """A command in Redis' protocol. redis-py encodes each argument in Python first: 30 us
        for a create's writes script (31 arguments). hiredis packs text, integers and floats
        itself, in 7; only other arguments (bytearrays, and the bools redis-py refuses) go
        through redis-py's encoder first."""
        if not self._hiredis_packs:
            return b"".join(self._packer.pack_command(*args))
        if not all(type(arg) in _PLAIN_ARGUMENTS for arg in args):
            args = tuple(
                arg if type(arg) in _PLAIN_ARGUMENTS
                else bytes(arg) if isinstance(arg, bytearray | memoryview)
                else self._encoder.encode(arg)  # type: ignore[no-untyped-call]
                for arg in args
            )  # fmt: skip
        packed: bytes = hiredis.pack_command(args)
        return packed

    async def _ready(self) -> _Link:
        """The connection to write to: checked or opened once for every caller waiting."""
        if self._readying is None or self._readying.done():
            self._readying = asyncio.get_running_loop().create_task(
                self._make_ready(), name="broker-redis-script-connection"
            )
        readying = self._readying
        try:
            return await asyncio.shield(readying)
        except RedisError as exc:
            raise _own_copy(exc) from exc.__cause__  # each caller its own exception
        except asyncio.CancelledError:
            if self._closed and readying.cancelled():  # by `aclose`, not this caller's own
                raise RedisConnectionError("the Redis client is closed") from None
            raise

    async def _make_ready(self) -> _Link:
        try:
            async with asyncio.timeout(self._timeout_s):
                link = self._link
                if link is not None and link.open and await link.answers_ping():
                    return link
                if link is not None:
                    link.close(RedisConnectionError("Connection replaced"))
                self._link = None
                self._link = link = await _Link.connect(
                    self._connection_class(**{**self._options, "socket_timeout": None}),
                    self._timeout_s,
                )
                return link
        except RedisError:
            raise
        except TimeoutError:
            raise RedisTimeoutError("Timeout connecting to Redis") from None
        except Exception as exc:
            raise RedisConnectionError(repr(exc)) from exc

    async def aclose(self) -> None:
        """Fail what waits, refuse what comes, and close the connection."""
        self._closed = True
        if self._readying is not None and not self._readying.done():
            self._readying.cancel()
        if self._link is not None:
            self._link.close(RedisConnectionError("the Redis client is closed"))
            self._link = None


class _Link(asyncio.Protocol):
    """One connection to Redis, read as its bytes arrive and written by the callers."""

    def __init__(self, opened: AbstractConnection, timeout_s: float | None) -> None:
        self._opened = opened
        self._timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._reader = _reader_like(opened)
        # Each script in flight, oldest first: its caller's future and when its reply is late.
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        # Commands held until the end of this turn of the event loop, to go in one write.
        self._held: list[bytes] | None = None
        self._last_read = self._loop.time()
        self.open = False

    @classmethod
    async def connect(cls, connection: AbstractConnection, timeout_s: float | None) -> _Link:
        """`connection` opened and greeted by redis-py, then read and written here."""
        await connection.connect()  # type: ignore[no-untyped-call]
        link = cls(connection, timeout_s)
        # redis-py reads through a StreamReader; its transport now delivers to the link. The
        # greeting is a request and its reply, so nothing is left unread in between.
        transport = connection._writer.transport  # type: ignore[union-attr]
        transport.set_protocol(link)
        link._transport = transport  # type: ignore[assignment]
        link.open = not transport.is_closing()
        return link

    def ready(self, health_check_s: float) -> bool:
        """Open, and read from recently enough that no health check is due."""
        if not self.open:
            return False
        return not health_check_s or self._loop.time() - self._last_read <= health_check_s

    async def answers_ping(self) -> bool:
        """Whether a connection idle past the health-check interval still answers."""
        try:
            await self.send(_PING)
        except RedisError:
            return False
        return True

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if not self.open:  # closed since it was found ready, before anything was written
            raise RedisConnectionError("Connection closed by server.")
        assert self._transport is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        deadline = self._loop.time() + (self._timeout_s or 0)
        self._waiting.append((future, deadline))
        if self._timer is None and self._timeout_s is not None:
            self._timer = self._loop.call_at(deadline, self._expire)
        if len(self._waiting) == 1:
            self._transport.write(command)  # nothing else in flight: no reason to wait
        elif self._held is None:
            self._held = [command]
            self._loop.call_soon(self._write_held)
        else:
            self._held.append(command)
        return future

    def _write_held(self) -> None:
        held, self._held = self._held, None
        if held and self.open:
            assert self._transport is not None
            self._transport.write(b"".join(held))

    # --- asyncio.Protocol -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        self._reader.feed(data)
        while self._waiting:
            try:
                reply = self._reader.gets()
            except InvalidResponse as exc:
                self.close(RedisConnectionError(f"Protocol error: {exc}"))
                return
            if reply is _INCOMPLETE:
                return
            if isinstance(reply, _PUSH):
                continue
            future, _ = self._waiting.popleft()
            _settle(future, reply)
            # The server is going away (LOADING…), or is a replica now (a failover: Sentinel
            # names the new master to the next connection, as redis-py's own would reconnect).
            if isinstance(reply, RedisConnectionError | ReadOnlyError):
                self.close(RedisConnectionError(f"Redis answered {type(reply).__name__}"))
                return
        if self._reader.has_data():  # a reply nobody asked for: the stream is out of step
            self.close(RedisConnectionError("Protocol error: a reply that no command asked for"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(RedisConnectionError("Connection closed by server."))

    def _expire(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        deadline = self._waiting[0][1]
        if deadline <= self._loop.time():
            self.close(RedisTimeoutError("Timeout reading from Redis"))
        else:
            self._timer = self._loop.call_at(deadline, self._expire)

    def close(self, failure: RedisError) -> None:
        """Never use this connection again; each script still waiting on it fails."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, collections.deque()
        self._held = None
        for future, _ in waiting:
            _settle(future, _own_copy(failure))
        if self.open:
            self.open = False
            if self._transport is not None:
                # Unread replies or a half-written command may be on it: dropped, not drained.
                self._transport.abort()
            self._opened._force_disconnect()  # redis-py's own record of it closed too


def _reader_like(connection: AbstractConnection) -> Any:
    """A hiredis parser making the replies redis-py's own parser makes for `connection`."""
    encoder = connection.encoder
    options: dict[str, Any] = {
        "protocolError": InvalidResponse,
        # redis-py's classes for Redis' errors (NOSCRIPT is NoScriptError, and so on).
        "replyError": connection._parser.parse_error,
        "notEnoughData": _INCOMPLETE,
    }
    if encoder.decode_responses:
        options["encoding"] = encoder.encoding
        options["errors"] = encoder.encoding_errors
    return hiredis.Reader(**options)


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    if future.done():
        return  # its caller gave up
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)


def _own_copy(failure: RedisError) -> RedisError:
    """Each waiting caller gets an exception of its own, so tracebacks do not pile onto one."""
    error = type(failure)(*failure.args)
    error.__cause__ = failure.__cause__
    return error
