"""The lean HTTP/1.1 pool Gladia's JSON calls go through, against raw loopback servers that
misbehave on purpose: what is reused, what is capped, what times out, and what is never resent."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from broker.gladia.transport import (
    AnswerTimeout,
    AnswerTooLarge,
    ConnectTimeout,
    HttpTransport,
    NoAnswer,
    NotSent,
)
from tests.support.redis_topologies import make_certificates
from tests.support.servers import free_port

CANARY_KEY = "gk-canary-7c1e3b"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Request:
    head: bytes
    body: bytes

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.decode().partition(":")
            if key.lower() == name.lower():
                return value.strip()
        return None


Reply = Callable[[Request, int, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Server:
    """Counts connections and requests; `reply` answers each request and says whether to go on."""

    reply: Reply
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[Request] = field(default_factory=list)
    handlers: list[asyncio.Task[Any] | None] = field(default_factory=list)
    listener: asyncio.Server | None = None

    def stop_listening(self) -> None:
        """No new connection from now on; those open stay open."""
        assert self.listener is not None
        self.listener.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self.handlers.append(asyncio.current_task())
        try:
            await self.serve(reader, writer)
        except asyncio.CancelledError:
            pass  # the test is over (asyncio's stream callback logs a cancelled handler)
        finally:
            self.open_now -= 1
            writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            request = Request(head, b"")
            length = int(request.header("content-length") or 0)
            request.body = await reader.readexactly(length)
            self.requests.append(request)
            served += 1
            if not await self.reply(request, served, writer):
                return
            await writer.drain()


async def answer_ok(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
    writer.write(OK)
    return True


@asynccontextmanager
async def serving(
    reply: Reply = answer_ok, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, int]]:
    server = Server(reply)
    listener = server.listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        listener.close()
        for handler in server.handlers:
            if handler is not None:
                handler.cancel()
        await asyncio.gather(*(h for h in server.handlers if h is not None))


def transport(port: int, scheme: str = "http", **options: Any) -> HttpTransport:
    settings: dict[str, Any] = {
        "max_connections": 4,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 1.0,
        "total_timeout_s": 3.0,
        "pool_wait_s": 1.0,
        "max_answer_bytes": 1024,
        **options,
    }
    return HttpTransport(f"{scheme}://127.0.0.1:{port}", {"x-gladia-key": CANARY_KEY}, **settings)


async def failure(
    reply: Reply, expected: type[Exception], method: str = "GET", **options: Any
) -> tuple[Server, float]:
    """One call to a server answering with `reply`, which must fail so; and how long it took."""
    async with serving(reply) as (server, port):
        http = transport(port, **options)
        body = b"{}" if method == "POST" else None
        started = time.monotonic()
        with pytest.raises(expected):
            await http.request(
                method, "/v2/live" if body else "/v2/live/s1", body, "application/json"
            )
        took = time.monotonic() - started
        await http.aclose()
    return server, took


async def test_a_request_carries_the_key_the_host_and_its_body_and_reads_the_answer() -> None:
    async with serving() as (server, port):
        http = transport(port)
        answer = await http.request(
            "POST", "/v2/live?region=eu-west", b'{"a":1}', "application/json"
        )
        await http.aclose()
    assert (answer.status, answer.body) == (200, b"{}")
    assert answer.headers["content-type"] == "application/json"  # names in lower case
    [request] = server.requests
    assert request.line == b"POST /v2/live?region=eu-west HTTP/1.1"
    assert request.header("x-gladia-key") == CANARY_KEY
    assert request.header("host") == f"127.0.0.1:{port}"
    assert request.header("content-type") == "application/json"
    assert request.body == b'{"a":1}'


async def test_sequential_calls_share_one_kept_alive_connection() -> None:
    async with serving() as (server, port):
        http = transport(port)
        for _ in range(5):
            assert (await http.request("GET", "/v2/live/s1")).status == 200
        await http.aclose()
    assert (server.connections, len(server.requests)) == (1, 5)
    assert server.requests[0].header("content-length") is None


async def test_concurrent_calls_never_open_more_than_the_cap() -> None:
    async def slow(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        writer.write(OK)
        return True

    async with serving(slow) as (server, port):
        http = transport(port, max_connections=2)
        answers = await asyncio.gather(*(http.request("GET", "/v2/live") for _ in range(8)))
        await http.aclose()
    assert [answer.status for answer in answers] == [200] * 8
    assert server.most_open == 2
    assert server.connections == 2


async def test_a_call_that_finds_the_pool_busy_past_its_wait_was_never_sent() -> None:
    async def hold(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.6)
        writer.write(OK)
        return True

    async with serving(hold) as (server, port):
        http = transport(port, max_connections=1, pool_wait_s=0.1)
        first = asyncio.create_task(http.request("POST", "/v2/live", b"{}", "application/json"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(ConnectTimeout):
            await http.request("POST", "/v2/live", b"{}", "application/json")
        assert time.monotonic() - started < 0.4
        assert (await first).status == 200
        # The slot the timed-out wait gave up is whole again: the next call goes through.
        assert (await http.request("GET", "/v2/live")).status == 200
        await http.aclose()
    assert len(server.requests) == 2


async def test_nothing_listening_is_not_sent() -> None:
    http = transport(free_port())
    with pytest.raises(NotSent) as raised:
        await http.request("POST", "/v2/live", b"{}", "application/json")
    assert not isinstance(raised.value, NoAnswer)
    await http.aclose()


async def test_a_silent_server_is_cut_off_at_the_read_timeout() -> None:
    async def silent(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    _, took = await failure(silent, AnswerTimeout, "POST", read_timeout_s=0.2)
    assert 0.15 < took < 1.0


async def test_a_server_that_drips_is_cut_off_at_the_total_deadline() -> None:
    async def drip(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)
        return False

    _, took = await failure(drip, AnswerTimeout, read_timeout_s=0.2, total_timeout_s=0.5)
    assert 0.45 < took < 1.5


async def test_connection_close_is_honoured() -> None:
    async def closing(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        return False

    async with serving(closing) as (server, port):
        http = transport(port)
        for _ in range(3):
            assert (await http.request("POST", "/v2/live", b"{}", "application/json")).status == 200
        await http.aclose()
    assert server.connections == 3


async def test_an_idle_connection_the_server_closed_is_not_written_to() -> None:
    async def answer_then_close(
        request: Request, served: int, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(OK)
        return False  # keep-alive promised, then closed: the pool hears it before reuse

    async with serving(answer_then_close) as (server, port):
        http = transport(port)
        await http.request("POST", "/v2/live", b"{}", "application/json")
        await asyncio.sleep(0.05)
        assert (await http.request("POST", "/v2/live", b"{}", "application/json")).status == 200
        await http.aclose()
    assert (server.connections, len(server.requests)) == (2, 2)


async def test_a_connection_idle_past_the_keepalive_is_not_reused() -> None:
    async with serving() as (server, port):
        http = transport(port, keepalive_s=0.1)
        await http.request("GET", "/v2/live/s1")
        await http.request("GET", "/v2/live/s1")
        await asyncio.sleep(0.2)
        await http.request("GET", "/v2/live/s1")
        await http.aclose()
    assert (server.connections, len(server.requests)) == (2, 3)


def close_on_second_request() -> Reply:
    """Answers a connection's first request, reads its second and closes without a byte."""

    async def reply(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        if served == 2:
            return False
        writer.write(OK)
        return True

    return reply


async def test_a_kept_alive_connection_closed_under_a_get_is_retried_once_fresh() -> None:
    async with serving(close_on_second_request()) as (server, port):
        http = transport(port)
        await http.request("GET", "/v2/live/s1")
        assert (await http.request("GET", "/v2/live/s1")).status == 200
        await http.aclose()
    assert (server.connections, len(server.requests)) == (2, 3)


async def test_a_kept_alive_connection_closed_under_a_create_is_an_unknown_outcome() -> None:
    async with serving(close_on_second_request()) as (server, port):
        http = transport(port)
        await http.request("POST", "/v2/live", b"{}", "application/json")
        with pytest.raises(NoAnswer):
            await http.request("POST", "/v2/live", b"{}", "application/json")
        await http.aclose()
    assert len(server.requests) == 2, "a create is never sent twice"


async def test_the_retry_opens_a_new_connection_rather_than_take_another_stale_one() -> None:
    async with serving(close_on_second_request()) as (server, port):
        http = transport(port, max_connections=2)
        await asyncio.gather(http.request("GET", "/v2/live/a"), http.request("GET", "/v2/live/b"))
        assert (await http.request("GET", "/v2/live/c")).status == 200
        await http.aclose()
    assert server.connections == 3
    assert [request.line for request in server.requests[2:]] == [b"GET /v2/live/c HTTP/1.1"] * 2


async def test_a_call_written_then_dropped_whose_retry_cannot_connect_is_an_unknown_outcome() -> (
    None
):
    async with serving(close_on_second_request()) as (server, port):
        http = transport(port)
        await http.request("GET", "/v2/live/a")
        server.stop_listening()
        with pytest.raises(NoAnswer):  # the server has the DELETE: not "never sent"
            await http.request("DELETE", "/v2/live/a")
        await http.aclose()
    assert server.requests[-1].line == b"DELETE /v2/live/a HTTP/1.1"


async def test_a_connection_closed_as_it_is_handed_to_a_waiting_create_is_replaced() -> None:
    async def answer_then_close(
        request: Request, served: int, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(OK)
        return False

    async with serving(answer_then_close) as (server, port):
        http = transport(port, max_connections=1)
        answers = await asyncio.gather(
            *(http.request("POST", "/v2/live", b"{}", "application/json") for _ in range(2))
        )
        await http.aclose()
    assert [answer.status for answer in answers] == [200, 200]
    assert (server.connections, len(server.requests)) == (2, 2), "each create sent once"


async def test_head_is_refused_before_anything_is_sent() -> None:
    http = transport(free_port())
    with pytest.raises(ValueError):
        await http.request("HEAD", "/v2/live/s1")
    await http.aclose()


async def test_a_connection_dropped_mid_answer_is_an_unknown_outcome_even_for_a_get() -> None:
    async def half(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"id":')
        return False

    server, _ = await failure(half, NoAnswer)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", b"{}"),
        (b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"a": 1}', b'{"a": 1}'),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, b"{}"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
    ids=["chunked", "until-close", "after-100-continue", "no-content"],
)
async def test_every_way_http_frames_an_answer_is_read(raw: bytes, body: bytes) -> None:
    async def reply(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        return b"close" not in raw

    async with serving(reply) as (_, port):
        http = transport(port)
        assert (await http.request("GET", "/v2/live/s1")).body == body
        await http.aclose()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"200\r\n"
        + b"x" * 512
        + b"\r\n"
        + b"200\r\n"
        + b"x" * 512
        + b"\r\n"
        + b"1\r\nx\r\n",
    ],
    ids=["declared", "chunked"],
)
async def test_an_answer_past_the_cap_is_refused(raw: bytes) -> None:
    async def reply(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await asyncio.sleep(1)
        return False

    await failure(reply, AnswerTooLarge, max_answer_bytes=1024)


@pytest.mark.parametrize(
    "raw",
    [b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"],
    ids=["not-http", "switching-protocols"],
)
async def test_an_answer_that_is_not_an_http_answer_is_an_unknown_outcome(raw: bytes) -> None:
    async def garbage(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        return False

    server, _ = await failure(garbage, NoAnswer, "POST")
    assert len(server.requests) == 1


async def test_bytes_past_the_answer_retire_the_connection() -> None:
    async def extra(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK + OK)
        return True

    async with serving(extra) as (server, port):
        http = transport(port)
        await http.request("GET", "/v2/live/s1")
        await asyncio.sleep(0.05)
        await http.request("GET", "/v2/live/s1")
        await http.aclose()
    assert server.connections == 2


async def test_a_cancelled_call_gives_its_slot_back() -> None:
    async def hold_first(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        if len(server.requests) == 1:
            await asyncio.sleep(5)
        writer.write(OK)
        return True

    async with serving(hold_first) as (server, port):
        http = transport(port, max_connections=1, pool_wait_s=0.2)
        stuck = asyncio.create_task(http.request("GET", "/v2/live/s1"))
        await asyncio.sleep(0.05)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert (await http.request("GET", "/v2/live/s1")).status == 200
        await http.aclose()
    assert server.connections == 2, "the cancelled exchange's connection is not reused"


async def test_closing_the_transport_fails_waiting_calls_as_not_sent() -> None:
    async def hold(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.3)
        writer.write(OK)
        return True

    async with serving(hold) as (_, port):
        http = transport(port, max_connections=1)
        first = asyncio.create_task(http.request("GET", "/v2/live/s1"))
        waiting = asyncio.create_task(http.request("GET", "/v2/live/s2"))
        await asyncio.sleep(0.05)
        await http.aclose()
        with pytest.raises(NotSent):
            await waiting
        assert (await first).status == 200
        with pytest.raises(NotSent):
            await http.request("GET", "/v2/live/s3")


async def test_no_failure_names_the_key_or_the_target() -> None:
    async def silent(request: Request, served: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    failures: list[BaseException] = []
    async with serving(silent) as (_, port):
        http = transport(port, read_timeout_s=0.1)
        for call in (
            http.request("GET", "/v2/live/secret-id"),
            transport(free_port()).request("GET", "/v2/live/secret-id"),
        ):
            try:
                await call
            except (NotSent, NoAnswer) as exc:
                failures.append(exc)
        await http.aclose()
    assert len(failures) == 2
    for failure in failures:
        text = f"{failure!r} {failure} {failure.__cause__!r} {failure.__context__!r}"
        assert CANARY_KEY not in text and "secret-id" not in text


def test_a_header_value_http_cannot_carry_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as raised:
        HttpTransport(
            "http://127.0.0.1:1",
            {"x-gladia-key": CANARY_KEY + "\r\nx-evil: 1"},
            max_connections=1,
            connect_timeout_s=1,
            read_timeout_s=1,
            total_timeout_s=1,
            pool_wait_s=1,
            max_answer_bytes=1,
        )
    assert CANARY_KEY not in str(raised.value)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path_factory.mktemp("transport-tls"))


async def test_https_verifies_the_server_against_the_given_cas(
    certificates: tuple[Path, Path, Path],
) -> None:
    ca_file, cert_file, key_file = certificates
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    async with serving(tls=server_tls) as (server, port):
        trusting = transport(port, "https", ssl_context=ssl.create_default_context(cafile=ca_file))
        assert (await trusting.request("GET", "/v2/live/s1")).status == 200
        await trusting.aclose()
        with pytest.raises(NotSent):  # the public CAs do not know this certificate
            await transport(port, "https").request("GET", "/v2/live/s1")
    assert len(server.requests) == 1
