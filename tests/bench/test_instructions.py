"""`python -m tests.bench.instructions` in a short run: both scenarios counted, and counted
alike twice (the figures of so few requests mean little)."""

import shutil

from tests.bench.instructions import count, render
from tests.bench.processes import REPO_ROOT
from tests.support.required import missing


def test_each_scenario_is_counted_and_a_second_count_agrees() -> None:
    if shutil.which("valgrind") is None:
        missing("valgrind is not installed (apt-get install valgrind)")
    first, second = count(REPO_ROOT, 20), count(REPO_ROOT, 20)
    for scenario in ("create", "lookup"):
        assert first[scenario] > 100_000, scenario  # a request is more than its parsing
        assert abs(first[scenario] / second[scenario] - 1) < 0.05, scenario
    # A create authenticates, calls Gladia and runs two scripts; a lookup runs one.
    assert first["create"] > first["lookup"]
    table = render({"this tree": first, "HEAD": second}, 20)
    assert "| create |" in table and "| lookup |" in table
