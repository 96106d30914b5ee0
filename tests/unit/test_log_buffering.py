"""`broker serve` writes its log lines in batches: none lost, none late by more than a tick,
warnings at once."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from broker.observability.logs import BufferedStreamHandler


class CountingStream(io.StringIO):
    """A stream that counts the writes reaching it, as a pipe would count system calls."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def stream() -> CountingStream:
    return CountingStream()


@pytest.fixture
def logger(stream: CountingStream) -> Iterator[logging.Logger]:
    handler = BufferedStreamHandler(stream, flush_s=0.05, max_bytes=4096)
    handler.setFormatter(logging.Formatter("%(message)s"))
    found = logging.getLogger("broker.test.buffering")
    found.handlers, found.propagate, found.level = [handler], False, logging.INFO
    yield found
    handler.close()
    found.handlers, found.propagate = [], True


def wait_for(condition: object, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "the lines never reached the stream"
        time.sleep(0.01)


def test_many_lines_reach_the_stream_in_few_writes_and_in_order(
    logger: logging.Logger, stream: CountingStream
) -> None:
    for number in range(200):
        logger.info("line %d", number)
    assert stream.writes <= 3  # a write at each 4 KiB at most, not one per line
    wait_for(lambda: stream.getvalue().count("\n") == 200)
    assert stream.getvalue().splitlines() == [f"line {number}" for number in range(200)]
    assert stream.writes < 20


def test_an_info_line_is_written_within_the_flush_interval(
    logger: logging.Logger, stream: CountingStream
) -> None:
    logger.info("access line")
    assert stream.getvalue() == ""
    wait_for(lambda: stream.getvalue() == "access line\n", timeout_s=1.0)


def test_a_warning_is_written_at_once_with_what_waited_before_it(
    logger: logging.Logger, stream: CountingStream
) -> None:
    logger.info("before")
    logger.warning("redis failed")
    assert stream.getvalue() == "before\nredis failed\n"


def test_closing_writes_what_waits(stream: CountingStream) -> None:
    handler = BufferedStreamHandler(stream, flush_s=60)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(logging.makeLogRecord({"msg": "last line", "levelno": logging.INFO}))
    assert stream.getvalue() == ""
    handler.close()
    assert stream.getvalue() == "last line\n"


def test_a_closed_stream_drops_the_lines_without_raising(stream: CountingStream) -> None:
    handler = BufferedStreamHandler(stream, flush_s=60)
    handler.handle(logging.makeLogRecord({"msg": "lost", "levelno": logging.INFO}))
    stream.close()
    handler.close()  # no ValueError from writing to a closed stream
