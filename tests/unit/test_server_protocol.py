"""An answer's writes leave in one system call, and nothing written is held back or lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from broker.web.server_protocol import HOLD_BYTES, CoalescingHttpToolsProtocol, _CoalescingTransport
from tests.support.servers import serve_in_thread


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.7", 5000)}.get(name, default)


def coalescing() -> tuple[_CoalescingTransport, RecordingTransport]:
    real = RecordingTransport()
    return _CoalescingTransport(cast(asyncio.Transport, real)), real


async def test_the_writes_of_one_turn_leave_together_at_its_end() -> None:
    transport, real = coalescing()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"{}")
    assert real.writes == []
    assert transport.get_write_buffer_size() == 21
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    transport.write(b"more")
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"more"]
    transport.write(b"now")
    transport.flush()
    assert real.writes[2:] == [b"now"]


async def test_closing_sends_what_was_written_first_and_aborting_drops_it() -> None:
    transport, real = coalescing()
    transport.write(b"last words")
    transport.close()
    assert (real.writes, real.closed) == ([b"last words"], True)
    await asyncio.sleep(0)
    assert real.writes == [b"last words"], "nothing is sent twice"

    transport, real = coalescing()
    transport.write(b"never")
    transport.abort()
    await asyncio.sleep(0)
    assert (real.writes, real.aborted) == ([], True)


async def test_a_large_write_goes_at_once_after_what_was_held() -> None:
    transport, real = coalescing()
    transport.write(b"head")
    transport.write(b"x" * (HOLD_BYTES + 1))
    # At once, so that the real transport's buffer (and uvicorn's flow control) sees it.
    assert real.writes == [b"head", b"x" * (HOLD_BYTES + 1)]
    await asyncio.sleep(0)
    assert len(real.writes) == 2


async def test_the_end_of_writing_and_many_lines_keep_their_order() -> None:
    transport, real = coalescing()
    transport.writelines([b"a", b"b"])
    transport.write_eof()
    assert real.writes == [b"ab", b"<eof>"]


async def test_everything_else_is_the_real_transports() -> None:
    transport, _ = coalescing()
    assert transport.get_extra_info("peername") == ("10.0.0.7", 5000)


async def streamed(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"data: {n}\n\n".encode()
            await asyncio.sleep(0.2)

    return StreamingResponse(parts(), media_type="text/event-stream")


async def answered(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path})


def test_uvicorn_serves_whole_answers_and_streams_as_they_are_written() -> None:
    app = Starlette(routes=[Route("/json", answered), Route("/stream", streamed)])
    with (
        serve_in_thread(app, http=CoalescingHttpToolsProtocol) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        for _ in range(3):  # one kept-alive connection
            assert client.get("/json").json() == {"path": "/json"}
        arrivals = []
        with client.stream("GET", "/stream") as response:
            for line in response.iter_lines():
                if line:
                    arrivals.append((line, time.monotonic()))
    assert [line for line, _ in arrivals] == ["data: 0", "data: 1", "data: 2"]
    # Each event leaves as it is written, not with the end of the answer.
    assert arrivals[1][1] - arrivals[0][1] > 0.1


def test_a_whole_answer_leaves_before_the_rest_of_its_turn_runs() -> None:
    """What the app does after its last byte (the access line, the middlewares' unwinding)
    does not hold the answer back: here it blocks the loop until the client has read it."""
    read = threading.Event()
    waited: list[bool] = []

    async def answer_then_block(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
        waited.append(read.wait(timeout=5))  # nothing yields to the loop meanwhile

    app = Starlette(routes=[Mount("/", app=answer_then_block)])
    with (
        serve_in_thread(app, http=CoalescingHttpToolsProtocol) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        assert client.get("/").text == "ok"
        read.set()
        assert client.get("/").text == "ok"  # the kept-alive connection serves the next one
    assert waited[0] is True
