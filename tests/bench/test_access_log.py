"""The access-log micro-benchmark itself, in a short run: every row is measured, every line lands.

Its figures mean nothing at this size; the full run is `python -m tests.bench.access_log`.
"""

import subprocess
import sys


def test_a_short_run_prints_every_row_and_writes_one_line_per_logged_request() -> None:
    command = [sys.executable, "-m", "tests.bench.access_log", "--requests", "100", "--rounds", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    for row in (
        "bare app",
        "middleware, line off",
        "middleware, line on",
        "middleware, line + metrics",
        "Metrics.observe_request",
        "access line (on - off)",
    ):
        assert row in done.stdout
    # The warm-up's 2,000 and the two rounds that log (line on, line + metrics).
    assert "lines written: 2200 of 2200" in done.stdout
    assert done.stderr == ""
