"""Log times: RFC 3339 in UTC with milliseconds, whatever time zone the process runs in."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from broker.observability.logs import JsonFormatter, TextFormatter, configure_logging

RFC3339_UTC_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LAST_SECOND_OF_2025 = 1_767_225_599  # 2025-12-31T23:59:59Z


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """The process's local time 5 h 30 min ahead of UTC (a POSIX TZ, no tz database needed)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "XST-05:30"
    time.tzset()
    assert time.localtime(LAST_SECOND_OF_2025).tm_hour != time.gmtime(LAST_SECOND_OF_2025).tm_hour
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.fixture
def restored_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Logging as it was before the test, whatever configure_logging changes."""
    root = logging.getLogger()
    root_level = root.level
    monkeypatch.setattr(root, "handlers", root.handlers[:])
    for flag in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, flag, getattr(logging, flag))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "sse_starlette"):
        touched = logging.getLogger(name)
        for attribute in ("handlers", "propagate", "disabled", "level"):
            monkeypatch.setattr(touched, attribute, getattr(touched, attribute))
    yield
    root.setLevel(root_level)  # and the loggers' cached levels are cleared


@pytest.mark.parametrize(
    ("formatter", "created", "expected"),
    [
        (JsonFormatter(), LAST_SECOND_OF_2025 + 0.125, "2025-12-31T23:59:59.125Z"),
        (JsonFormatter(), LAST_SECOND_OF_2025 + 0.0625, "2025-12-31T23:59:59.062Z"),
        (JsonFormatter(), LAST_SECOND_OF_2025 + 1023 / 1024, "2025-12-31T23:59:59.999Z"),
        (JsonFormatter(), LAST_SECOND_OF_2025 + 1.0, "2026-01-01T00:00:00.000Z"),
        (TextFormatter(), LAST_SECOND_OF_2025 + 0.5, "2025-12-31T23:59:59.500Z"),
    ],
    ids=["json", "json-leading-zero", "json-last-millisecond", "json-next-year", "text"],
)
def test_a_time_is_utc_with_milliseconds_in_another_time_zone(
    far_from_utc: None, formatter: JsonFormatter | TextFormatter, created: float, expected: str
) -> None:
    assert formatter.format_time(created) == expected


def test_the_second_is_formatted_once_and_the_milliseconds_on_every_line(
    far_from_utc: None,
) -> None:
    formatter = JsonFormatter()
    start = LAST_SECOND_OF_2025 + 0.75
    for offset_s, millis in ((0, 750), (0.125, 875), (0.1875, 937), (1.125, 875), (-3600, 750)):
        created = start + offset_s
        second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(created)))
        assert formatter.format_time(created) == f"{second}.{millis}Z"


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "text"])
def test_each_line_written_starts_with_the_utc_time_of_its_record(
    json_lines: bool,
    far_from_utc: None,
    restored_logging: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "broker.log"
    with path.open("w", buffering=1, encoding="utf-8") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        configure_logging(json_lines=json_lines, level="INFO")
        before = time.time()
        logging.getLogger("broker.test").warning("written")
        after = time.time()
    line = path.read_text(encoding="utf-8").splitlines()[-1]
    stamp = json.loads(line)["time"] if json_lines else line.split(" ", 1)[0]
    assert RFC3339_UTC_MILLIS.fullmatch(stamp), line
    # The stamp is read as UTC: a local time would be 5 h 30 min away from the clock.
    written = datetime.fromisoformat(stamp).timestamp()
    assert int(before * 1000) / 1000 <= written <= after
