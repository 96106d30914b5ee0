"""`python -m tests.bench.instructions [--against REF]`: the broker's CPU instructions per create
and per lookup, counted by valgrind, for this tree and REF's.

A count of instructions is the same from run to run (within a few tenths of a percent) whatever
else the machine is doing, where the timed rows of `python -m tests.bench` move by tens of
percent on a shared machine: it says what a change to the broker's own work did, though not
what it does to latency (valgrind runs the broker about fifty times slower, so no request ever
waits for another). Each broker runs under callgrind with counting off. Each scenario's
`--requests` requests are sent once to warm it (as the timed runs replay theirs over and over),
then again, one after another on one connection, with counting on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.bench.compare import worktree
from tests.bench.harness import Bench, Options, lookup_requests
from tests.bench.load import PreparedRequest
from tests.bench.processes import REPO_ROOT, Process
from tests.support.servers import start_redis_server

# valgrind starts the broker's interpreter about fifty times slower than it runs natively.
START_TIMEOUT_S = 300.0


def count(code: Path, requests: int) -> dict[str, float]:
    """Instructions per request of the broker at `code`, for each scenario."""
    with tempfile.TemporaryDirectory(prefix="broker-instructions-") as tmp:
        bench = Bench(Options(), Path(tmp))
        bench.redis = start_redis_server(bench.run_dir)
        try:
            bench.simulator = bench.start_simulator()
            bench.processes = [bench.simulator]
            bench.simulator.wait_http("/v2/live", status=401)
            out_file = bench.run_dir / "callgrind.out"
            broker = bench._start_broker(
                "broker", bench.redis.url, code=code, prefix=_callgrind(out_file)
            )
            bench.processes.append(broker)
            broker.wait_http("/readyz", timeout_s=START_TIMEOUT_S)
            creates, _ = bench.create_requests()
            _, lookups = lookup_requests(bench)
            return {
                "create": _counted(broker, out_file, creates, requests) / requests,
                "lookup": _counted(broker, out_file, lookups, requests) / requests,
            }
        finally:
            bench.stop()


def _callgrind(out_file: Path) -> tuple[str, ...]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    return (
        valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}",
    )  # fmt: skip


def _counted(
    broker: Process, out_file: Path, prepared: Sequence[PreparedRequest], requests: int
) -> int:
    """The instructions the broker ran for the first `requests` of `prepared`, sent a second
    time."""
    with httpx.Client(base_url=broker.base_url or "", timeout=60.0) as client:
        _send(client, prepared, requests)
        _control(broker, "--instr=on")
        _send(client, prepared, requests)
        _control(broker, "--instr=off")
    # A dump writes what was counted since the last one to a file of its own, and resets.
    before = set(out_file.parent.glob(f"{out_file.name}*"))
    _control(broker, "--dump")
    (dump,) = set(out_file.parent.glob(f"{out_file.name}*")) - before
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):  # its `summary:` is written before anything is counted
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def _control(broker: Process, command: str) -> None:
    """One of callgrind_control's commands, which exits 0 when it finds no such process too."""
    done = subprocess.run(
        ["callgrind_control", command, str(broker.pid)], capture_output=True, text=True
    )
    if "OK" not in done.stdout:
        raise RuntimeError(f"callgrind_control {command}: {done.stdout}{done.stderr}")


def _send(client: httpx.Client, prepared: Sequence[PreparedRequest], requests: int) -> None:
    for n in range(requests):
        request = prepared[n % len(prepared)]
        response = client.request(
            request.method, request.path, headers=request.headers(), content=request.body or None
        )
        if response.status_code >= 300:
            raise RuntimeError(f"{request.method} {request.path} answered {response.status_code}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.instructions", description=__doc__)
    parser.add_argument("--against", default=None, help="a git ref to count beside this tree")
    parser.add_argument("--requests", type=int, default=300, help="counted requests per scenario")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    args = parser.parse_args()
    counts = {"this tree": count(REPO_ROOT, args.requests)}
    if args.against:
        with worktree(args.against) as path:
            counts[args.against] = count(path, args.requests)
    print(render(counts, args.requests))
    if args.json:
        args.json.write_text(json.dumps(counts, indent=2))


def render(counts: dict[str, dict[str, float]], requests: int) -> str:
    trees = list(counts)
    lines = [
        f"Instructions per request in the broker (callgrind, {requests} requests, one at a time)",
        "",
        "| scenario | " + " | ".join(trees) + " |" + (" change |" if len(trees) > 1 else ""),
        "|---" * (len(trees) + 1 + (len(trees) > 1)) + "|",
    ]
    for scenario in ("create", "lookup"):
        figures = [counts[tree][scenario] for tree in trees]
        row = f"| {scenario} | " + " | ".join(f"{value / 1e6:.3f} M" for value in figures) + " |"
        if len(figures) > 1:
            row += f" {figures[0] / figures[1] - 1:+.1%} |"
        lines.append(row)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
