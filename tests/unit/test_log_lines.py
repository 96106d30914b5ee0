"""JSON log lines: ASCII JSON whatever their fields hold; access lines gathered per loop turn."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from broker.observability.logs import JsonFormatter, JsonLineSink

CREATED = 1_767_225_599.25


@pytest.mark.parametrize(
    "fields",
    [
        {"route": "/v1/sessions/{session_id}", "status": 200, "duration_ms": 0.52, "x": None},
        {"subject": "zoë ünïcode ✓", "note": "tab\there"},  # written by json, escaped
        {"big": 2**70},  # beyond orjson's integers: json writes it
    ],
)
def test_a_line_is_ascii_json_that_reads_back_to_its_entry(fields: dict[str, object]) -> None:
    line = JsonFormatter().line(CREATED, "info", "broker.access", "m", "r" * 32, fields)
    assert line.isascii() and "\n" not in line
    entry = json.loads(line)
    assert entry == {
        "time": "2025-12-31T23:59:59.250Z",
        "level": "info",
        "logger": "broker.access",
        "message": "m",
        "request_id": "r" * 32,
        **fields,
    }


class _CountedWrites(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_access_lines_of_one_turn_share_one_write_after_it() -> None:
    stream = _CountedWrites()
    sink = JsonLineSink(stream)
    for n in range(3):
        sink.write_soon(f'{{"n":{n}}}')
    assert stream.getvalue() == ""  # not within the turn
    await asyncio.sleep(0)
    assert stream.getvalue() == '{"n":0}\n{"n":1}\n{"n":2}\n'
    assert stream.writes == 1


async def test_a_record_and_closing_write_the_lines_before_them_first() -> None:
    stream = io.StringIO()
    sink = JsonLineSink(stream)
    sink.setFormatter(JsonFormatter())
    sink.write_soon('{"access":1}')
    sink.emit(logging.makeLogRecord({"msg": "after", "name": "broker", "levelname": "INFO"}))
    sink.write_soon('{"access":2}')
    sink.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == '{"access":1}' and json.loads(lines[1])["message"] == "after"
    assert lines[2:] == ['{"access":2}']
