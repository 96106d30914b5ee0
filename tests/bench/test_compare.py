"""`python -m tests.bench.compare` in a short run: both brokers measured, nothing errs.

The tree is compared with itself here (the figures of a one-second run mean nothing); the
worktree of a ref is checked out and removed again.
"""

import shutil

from tests.bench.compare import compare, render, worktree
from tests.bench.harness import Options
from tests.bench.processes import REPO_ROOT
from tests.support.required import missing


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        missing("wrk is not installed (apt-get install wrk)")


def test_a_short_comparison_measures_both_brokers_in_every_scenario() -> None:
    require_wrk()
    options = Options(duration_s=1, warmup_s=0, rounds=1, connections=10, large_store=0)
    results = compare(options, REPO_ROOT)
    assert [item.scenario.split(" (paced")[0] for item in results] == [
        "reconnect lookup",
        "create (saturated)",
        "create",
        "callbacks",
    ]
    assert results[2].paced and results[2].reference is not None
    for item in results:
        for summary in (item.against, item.this_tree):
            assert summary.rate > 0 and summary.errors == 0, item.scenario
    assert render("HEAD", results).count("\n") == len(results) + 1


def test_the_ref_is_checked_out_beside_the_tree_and_removed_after() -> None:
    with worktree("HEAD") as tree:
        assert (tree / "broker" / "cli.py").is_file()
        assert tree != REPO_ROOT
    assert not tree.exists()
