"""Load from a separate process: wrk (C, event loop) replaying prepared requests as fast as
they are answered; paced.py (aiohttp) for the paced latency rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.bench.processes import Process

SCRIPT = Path(__file__).with_name("lua") / "requests.lua"


@dataclass(frozen=True)
class PreparedRequest:
    method: str
    path: str
    header: tuple[str, str] | None = None
    body: str = ""
    # The end user's address, as the gateway in front of the broker names it (X-Forwarded-For,
    # believed from 127.0.0.1, the default BROKER_TRUSTED_PROXIES).
    client: str = ""

    def line(self) -> str:
        name, value = self.header or ("", "")
        fields = (self.method, self.path, name, value, self.client, self.body)
        if any("\t" in item or "\n" in item for item in fields):
            raise ValueError("a prepared request may not contain tabs or newlines")
        return "\t".join(fields)

    @classmethod
    def from_line(cls, line: str) -> PreparedRequest:
        method, path, name, value, client, body = (line.split("\t") + [""] * 6)[:6]
        return cls(method, path, (name, value) if name else None, body, client)

    def headers(self) -> dict[str, str]:
        """What every load generator sends with it (lua/requests.lua writes the same)."""
        headers = dict([self.header]) if self.header else {}
        if self.client:
            headers["X-Forwarded-For"] = self.client
        if self.body:
            headers["Content-Type"] = "application/json"
        return headers


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured, and how busy each process was meanwhile."""

    requests: int
    duration_s: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    cpu_percent: dict[str, float]

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    return binary


def write_requests(path: Path, requests: Sequence[PreparedRequest]) -> Path:
    path.write_text("".join(request.line() + "\n" for request in requests))
    return path


def run_wrk(
    base_url: str,
    requests_file: Path,
    *,
    connections: int,
    duration_s: float,
    watched: Sequence[Process] = (),
) -> LoadResult:
    """One wrk run (one thread, keep-alive connections), and the CPU `watched` used meanwhile."""
    command = [
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        base_url,
        "--",
        str(requests_file),
    ]
    return _measured(command, "wrk", watched)


def run_paced(
    base_url: str,
    requests_file: Path,
    *,
    clients: int,
    duration_s: float,
    rate: float,
    watched: Sequence[Process] = (),
) -> LoadResult:
    """`clients` users sending `rate` requests a second in all, spread at random (paced.py)."""
    command = [
        sys.executable, "-m", "tests.bench.paced",
        "--url", base_url,
        "--requests", str(requests_file),
        "--rate", str(rate),
        "--clients", str(clients),
        "--duration", str(duration_s),
    ]  # fmt: skip
    return _measured(command, "loadgen", watched)


def _measured(command: list[str], name: str, watched: Sequence[Process]) -> LoadResult:
    """Run a load generator to its end; its result line, and the CPU everyone used meanwhile."""
    cpu_before = {process.name: process.cpu_seconds() for process in watched}
    started = time.monotonic()
    popen = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    _, status, usage = os.wait4(popen.pid, 0)
    wall_s = time.monotonic() - started
    popen.returncode = os.waitstatus_to_exitcode(status)
    assert popen.stdout is not None and popen.stderr is not None
    output = popen.stdout.read().decode()
    errors = popen.stderr.read().decode()
    popen.stdout.close()
    popen.stderr.close()
    if popen.returncode != 0:
        raise RuntimeError(f"{name} failed ({popen.returncode}): {errors or output}")
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"{name} printed no result: {output} {errors}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    cpu = {
        name: 100 * (process.cpu_seconds() - cpu_before[name]) / wall_s
        for name, process in ((p.name, p) for p in watched)
    }
    cpu[name] = 100 * (usage.ru_utime + usage.ru_stime) / wall_s
    return LoadResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        errors={key: int(value) for key, value in data["errors"].items()},
        latency_ms={key: value / 1000 for key, value in data["latency_us"].items()},
        cpu_percent=cpu,
    )
