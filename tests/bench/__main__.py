"""`python -m tests.bench`: run the benchmark and print its table (see docs/performance.md)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from tests.bench.harness import Options, render, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per scenario")
    parser.add_argument("--connections", type=int, default=50, help="concurrent clients")
    parser.add_argument(
        "--large-store", type=int, default=1_000_000, help="sessions stored for the scale row"
    )
    parser.add_argument(
        "--paced-fraction",
        type=float,
        default=0.3,
        help="offered load of the paced create rows, as a fraction of the broker's saturated rate",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write py-spy flame graphs of the broker's saturated runs into this folder",
    )
    args = parser.parse_args()
    # A terminated run still stops the servers it started (the `finally` in `run`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    options = Options(
        duration_s=args.duration,
        warmup_s=args.warmup,
        rounds=args.rounds,
        connections=args.connections,
        large_store=args.large_store,
        paced_fraction=args.paced_fraction,
        profile_dir=args.profile,
    )
    report = run(options)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
