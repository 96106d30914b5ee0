"""The benchmark harness itself, in a short run: every row is measured, nothing errs.

The figures of such a run mean nothing (one second each, a busy CI machine); the full run is
`make bench` (docs/performance.md). This keeps the one command working from a fresh clone.
"""

import os
import shutil

import pytest

from tests.bench.harness import Options, render, run


def test_a_short_run_measures_every_row_without_errors() -> None:
    if shutil.which("wrk") is None:
        message = "wrk is not installed (apt-get install wrk)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must install it", pytrace=False)
        pytest.skip(message)
    report = run(Options(duration_s=1, warmup_s=0, rounds=1, connections=10, large_store=5_000))
    table = render(report)
    assert len(report.rows) == 8
    for name, summary in report.runs.items():
        if "rate" in summary:
            assert summary["rate"] > 0, name
            assert summary["errors"] == 0, name
    assert report.runs["memory"]["keys_in_large_store"] >= 5_000
    assert "callbacks ingested" in table
