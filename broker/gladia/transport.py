"""HTTP/1.1 to one origin for small JSON calls: a keep-alive pool of asyncio protocols.

Gladia's create is the broker's hottest upstream call, and its fixed cost is the client's: aiohttp
spent 107 to 211 us of CPU on a `POST /v2/live`, this 22 to 81 us (50 calls in flight to one;
docs/performance.md, session 8). Answers are parsed by httptools (llhttp, uvicorn's own
parser). Everything a caller needs to know is in the exception's class: whether the request left
(`NotSent`) or its outcome is unknown (`NoAnswer`). No message ever holds a header value, a
target or a byte of the answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

IDEMPOTENT_METHODS = frozenset({"GET", "DELETE", "PUT", "OPTIONS"})


class NotSent(Exception):
    """No connection could be had: the request never left this process."""


class ConnectTimeout(NotSent):
    """No free connection, or no new one opened, in time."""


class NoAnswer(Exception):
    """The request was written but no complete answer came back: its outcome is unknown."""


class AnswerTimeout(NoAnswer):
    """The server stayed silent past the read timeout, or the call passed its deadline."""


class AnswerTooLarge(NoAnswer):
    """The answer is larger than the client accepts."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes


class HttpTransport:
    """Requests to one origin over at most `max_connections` kept-alive connections.

    A call first takes an idle connection, else opens one while under the cap, else waits
    `pool_wait_s` for one to come back. A connection the server has closed before the request
    is written is replaced by a new one in its slot; one it closes under a kept-alive request,
    before a byte of the answer, is too, for idempotent methods only. `HEAD` is not supported
    (the parser would wait for the body its answer announces).
    """

    def __init__(
        self,
        origin: str,
        headers: Mapping[str, str],
        *,
        max_connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        total_timeout_s: float,
        pool_wait_s: float,
        max_answer_bytes: int,
        keepalive_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the origin must be an http(s) URL with a host")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = None
        if parts.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        fixed = {"Host": parts.netloc.rpartition("@")[2], **headers, "Accept-Encoding": "identity"}
        for name, value in fixed.items():
            if not value.isascii() or "\r" in value or "\n" in value:
                raise ValueError(f"the {name} header holds what HTTP cannot carry")
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._total_timeout_s = total_timeout_s
        self._pool_wait_s = pool_wait_s
        self._max_answer_bytes = max_answer_bytes
        self._keepalive_s = keepalive_s
        self._idle: list[_Connection] = []
        self._opened = 0  # connections open or being opened: idle, in use, or promised to a waiter
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._closed = False

    async def request(
        self, method: str, target: str, body: bytes | None = None, content_type: str = ""
    ) -> Answer:
        """One exchange; `target` is the path and query, already quoted."""
        if method == "HEAD":
            raise ValueError("HEAD is not supported")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._total_timeout_s
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed_headers}"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        payload = (head + "\r\n").encode("ascii") + (body or b"")
        connection, reused = await self._acquire(loop, deadline)
        try:
            return await self._exchange(connection, payload, deadline)
        except _Unwritten:
            written = False
        except _Dropped:
            if not (reused and method in IDEMPOTENT_METHODS):
                self._free_slot()
                raise NoAnswer() from None
            written = True
        # The server closed the connection first: once more, on a new one in the same slot.
        try:
            connection = await self._connect(loop, deadline)
        except NotSent:
            if written:
                raise NoAnswer() from None
            raise
        try:
            return await self._exchange(connection, payload, deadline)
        except _Unwritten:
            self._free_slot()
            if written:
                raise NoAnswer() from None
            raise NotSent() from None
        except _Dropped:
            self._free_slot()
            raise NoAnswer() from None

    async def aclose(self) -> None:
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(NotSent())

    async def _exchange(self, connection: _Connection, payload: bytes, deadline: float) -> Answer:
        """Send and read the answer; the connection goes back to the pool, or is closed.

        Closed by the server first (`_Unwritten`, `_Dropped`), it keeps its slot for the retry.
        """
        try:
            answer = await connection.exchange(payload, self._read_timeout_s, deadline)
        except (_Unwritten, _Dropped):
            connection.close()
            raise
        except BaseException:
            self._discard(connection)
            raise
        self._release(connection)
        return answer

    async def _acquire(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> tuple[_Connection, bool]:
        """A connection and whether it served before: idle, new under the cap, or waited for."""
        if self._closed:
            raise NotSent()
        now = loop.time()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable and now - connection.idle_since < self._keepalive_s:
                return connection, True
            self._discard(connection)
        if self._opened < self._max_connections:
            self._opened += 1
            return await self._connect(loop, deadline), False
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(min(deadline, now + self._pool_wait_s)):
                handed = await waiter
        except BaseException as exc:
            self._give_back(waiter)
            if isinstance(exc, TimeoutError):
                raise ConnectTimeout() from None
            raise
        if handed is not None:
            return handed, True
        return await self._connect(loop, deadline), False  # a slot was freed for us

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        """Open a connection in a slot already counted; a failed connect is tried once more."""
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self._connect_timeout_s)):
                try:
                    return await self._dial(loop)
                except OSError:
                    return await self._dial(loop)
        except TimeoutError:
            self._free_slot()
            raise ConnectTimeout() from None
        except OSError:  # refused, unresolved, or a certificate that does not verify
            self._free_slot()
            raise NotSent() from None
        except BaseException:
            self._free_slot()
            raise

    async def _dial(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        _, connection = await loop.create_connection(
            lambda: _Connection(loop, self._max_answer_bytes),
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None,
        )
        return connection

    def _give_back(self, waiter: asyncio.Future[_Connection | None]) -> None:
        """A wait that ended without its result taken: what it was handed returns to the pool."""
        if not waiter.done():
            waiter.cancel()
        elif not waiter.cancelled() and waiter.exception() is None:
            handed = waiter.result()
            if handed is None:
                self._free_slot()
            else:
                self._release(handed)

    def _release(self, connection: _Connection) -> None:
        if not (connection.reusable and connection.usable) or self._closed:
            self._discard(connection)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.idle_since = connection.loop.time()
        self._idle.append(connection)

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._free_slot()

    def _free_slot(self) -> None:
        """A slot given up: to the first waiter, who opens a connection in it, or to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._opened -= 1


class _Unwritten(Exception):
    """The connection was closed before the request could be written: nothing was sent."""


class _Dropped(Exception):
    """The connection closed before a byte of the answer came: maybe the request never arrived."""


class _Connection(asyncio.Protocol):
    """One connection, one exchange at a time; httptools calls the `on_*` methods."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_answer_bytes: int) -> None:
        self.loop = loop
        self.idle_since = 0.0
        self.reusable = False
        self._max_answer_bytes = max_answer_bytes
        self._transport: asyncio.Transport | None = None
        self._lost = False
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._too_large = False
        self._heard = False
        self._last_heard = 0.0
        self._read_timeout_s = 0.0
        self._deadline = 0.0

    @property
    def usable(self) -> bool:
        return not self._lost and self._transport is not None and not self._transport.is_closing()

    def exchange(
        self, payload: bytes, read_timeout_s: float, deadline: float
    ) -> asyncio.Future[Answer]:
        if not self.usable or self._transport is None:
            raise _Unwritten()
        self.reusable = False
        self._answer = answer = self.loop.create_future()
        self._status, self._headers, self._body, self._size = 0, {}, [], 0
        self._headers_done = self._too_large = self._heard = False
        self._read_timeout_s, self._deadline = read_timeout_s, deadline
        self._last_heard = now = self.loop.time()
        self._timer = self.loop.call_at(min(now + read_timeout_s, deadline), self._check_silence)
        self._transport.write(payload)
        return answer

    def close(self) -> None:
        self.reusable = False
        self._settle(NoAnswer())
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted any more
            return
        self._heard = True
        self._last_heard = self.loop.time()
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # 101 is not an answer
            self._settle(NoAnswer())
            self.close()
            return
        if self._too_large:
            self._settle(AnswerTooLarge())
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._answer is None or self._answer.done():
            return
        if self._headers_done and _delimited_by_close(self._headers) and not self._too_large:
            self._settle(Answer(self._status, self._headers, b"".join(self._body)))
        else:
            self._settle(NoAnswer() if self._heard else _Dropped())

    # httptools.HttpResponseParser's callbacks

    def on_message_begin(self) -> None:
        if self._answer is None:  # a second answer to one request: never reuse this connection
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True
        declared = self._headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_answer_bytes:
            self._too_large = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_answer_bytes:
            self._too_large = True
        elif not self._too_large:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._headers, self._body, self._size, self._headers_done = {}, [], 0, False
            return
        if self._too_large or self._answer is None:
            return
        self.reusable = self._parser.should_keep_alive()
        self._settle(Answer(self._status, self._headers, b"".join(self._body)))

    def _check_silence(self) -> None:
        if self._answer is None or self._answer.done():
            return
        now = self.loop.time()
        next_check = min(self._last_heard + self._read_timeout_s, self._deadline)
        if now < next_check:
            self._timer = self.loop.call_at(next_check, self._check_silence)
            return
        self._settle(AnswerTimeout())
        self.close()

    def _settle(self, outcome: Answer | Exception) -> None:
        """End the exchange in flight, if there is one, with its answer or its failure."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        answer, self._answer = self._answer, None
        if answer is None or answer.done():
            return
        if isinstance(outcome, Answer):
            answer.set_result(outcome)
        else:
            answer.set_exception(outcome)


def _delimited_by_close(headers: Mapping[str, str]) -> bool:
    """An answer with neither a length nor chunks ends when the server closes the connection."""
    return "content-length" not in headers and "transfer-encoding" not in headers
