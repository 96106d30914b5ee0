"""`python -m tests.bench.compare --against REF`: this tree's broker against REF's, in one run.

Both brokers run side by side on one Redis and one simulator, and the scenarios alternate
between them (and the baseline and the direct simulator calls) round after round, so that the
drift of a shared machine falls on both alike. What a change did is then read from the two
columns of one run, not from two runs on different days. REF is checked out into a temporary
git worktree; the load generators, the simulator and the baseline are this tree's.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.bench.harness import (
    Bench,
    Options,
    Summary,
    _alternate,
    baseline_lookups,
    callback_requests,
    checked_lookup,
    lookup_requests,
)
from tests.bench.processes import REPO_ROOT, Process


@dataclass(frozen=True)
class Comparison:
    """One scenario, measured for REF's broker, this tree's, and the reference."""

    scenario: str
    against: Summary
    this_tree: Summary
    reference: Summary | None
    # Latency at a fixed offered load: p50 / p99 ms, and the added p50 per round.
    paced: bool = False


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """REF's tree, checked out beside this one for the length of the run."""
    with tempfile.TemporaryDirectory(prefix="broker-compare-") as tmp:
        path = Path(tmp) / "tree"
        git = ["git", "-C", str(REPO_ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(path), ref], check=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=True)


def compare(options: Options, against: Path) -> list[Comparison]:
    with tempfile.TemporaryDirectory(prefix="broker-compare-run-") as tmp:
        bench = Bench(options, Path(tmp))
        try:
            bench.start()
            bench.stop_large_store()
            assert bench.redis is not None
            redis_url = bench.redis.url
            old = bench._start_broker("broker-ref", redis_url, code=against)
            new = bench._start_broker("broker-tree", redis_url)
            bench.processes += [old, new]
            old.wait_http("/readyz")
            new.wait_http("/readyz")
            # The two brokers' CPU, instead of the default broker's (idle here).
            bench.watched = lambda: [old, new, bench.simulator, bench.baseline, bench.redis_process]  # type: ignore[method-assign]  # one run's override
            return _measure_both(bench, old, new)
        finally:
            bench.stop()


def _measure_both(bench: Bench, old: Process, new: Process) -> list[Comparison]:
    targets, lookups = lookup_requests(bench)
    baseline = baseline_lookups(bench, targets, lookups, checked_lookup(new, lookups[0]))
    found = _alternate(
        bench, [("lookup-ref", old, lookups), ("lookup-tree", new, lookups),
                ("lookup-baseline", bench.baseline, baseline)],
    )  # fmt: skip
    results = [Comparison("reconnect lookup", found[0], found[1], found[2])]
    # As in the full run: the creates start from an empty store, so the callbacks afterwards
    # go to sessions the simulator created.
    bench.redis_client().flushall()
    through_broker, direct = bench.create_requests()
    found = _alternate(
        bench, [("create-ref", old, through_broker), ("create-tree", new, through_broker),
                ("create-direct", bench.simulator, direct)],
    )  # fmt: skip
    results.append(Comparison("create (saturated)", found[0], found[1], found[2]))
    # Latency, at the same offered load for all three: a share of the slower broker's rate.
    rate = bench.options.paced_fraction * min(found[0].rate, found[1].rate)
    paced = _alternate(
        bench,
        [
            ("create-ref-paced", old, through_broker),
            ("create-tree-paced", new, through_broker),
            ("create-direct-paced", bench.simulator, direct),
        ],
        rate,
    )
    results.append(
        Comparison(f"create (paced, {rate:.0f}/s)", paced[0], paced[1], paced[2], paced=True)
    )
    callbacks = callback_requests(bench, bench.redis_client())
    found = _alternate(
        bench, [("callbacks-ref", old, callbacks), ("callbacks-tree", new, callbacks)]
    )
    results.append(Comparison("callbacks", found[0], found[1], None))
    return results


def render(ref: str, results: list[Comparison]) -> str:
    lines = [
        f"| scenario | {ref}: req/s (CPU ms/req) | this tree | reference "
        "| this tree / reference, per round |",
        "|---|---|---|---|---|",
    ]
    for item in results:
        if item.paced:
            lines.append(_paced_line(item))
            continue
        reference = ""
        per_round = ""
        if item.reference is not None:
            reference = f"{item.reference.rate:.0f} ({item.reference.cpu_ms_per_request:.3f})"
            ratios = [
                mine.rate / theirs.rate
                for mine, theirs in zip(item.this_tree.runs, item.reference.runs, strict=True)
            ]
            per_round = " ".join(f"{ratio:.2f}" for ratio in ratios)
        lines.append(
            f"| {item.scenario} | {item.against.rate:.0f} ({item.against.cpu_ms_per_request:.3f})"
            f" | {item.this_tree.rate:.0f} ({item.this_tree.cpu_ms_per_request:.3f})"
            f" | {reference} | {per_round} |"
        )
    return "\n".join(lines)


def _paced_line(item: Comparison) -> str:
    def latency(summary: Summary) -> str:
        return f"p50 {summary.p50_ms:.2f} / p99 {summary.p99_ms:.2f} ms"

    assert item.reference is not None
    added = [
        f"{mine.latency_ms['p50'] - theirs.latency_ms['p50']:+.2f}"
        for mine, theirs in zip(item.this_tree.runs, item.reference.runs, strict=True)
    ]
    return (
        f"| {item.scenario} | {latency(item.against)} | {latency(item.this_tree)}"
        f" | {latency(item.reference)} | p50 {' '.join(added)} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.compare", description=__doc__)
    parser.add_argument("--against", required=True, help="the git ref to compare with")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per scenario")
    args = parser.parse_args()
    options = Options(duration_s=args.duration, warmup_s=1.0, rounds=args.rounds, large_store=0)
    with worktree(args.against) as tree:
        results = compare(options, tree)
    print(render(args.against, results))


if __name__ == "__main__":
    main()
