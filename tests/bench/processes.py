"""The benchmark's processes: each server in its own OS process on loopback, started and stopped
deliberately, with its CPU time and memory readable from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Process:
    """One child process, its log file, and what /proc says about it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    base_url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_bytes(self) -> int:
        """Resident set size now."""
        resident_pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
        return resident_pages * PAGE_BYTES

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{tail}")

    def wait_http(self, path: str, status: int = 200, timeout_s: float = 20.0) -> None:
        """Poll `path` until it answers `status`, or fail with the process's log."""
        assert self.base_url is not None
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            try:
                if httpx.get(self.base_url + path, timeout=1.0).status_code == status:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {path} in {timeout_s} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not leave within 10 s."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start_python(
    name: str,
    args: list[str],
    env: dict[str, str],
    run_dir: Path,
    base_url: str | None = None,
    prefix: tuple[str, ...] = (),
) -> Process:
    """Run `python -m …` from `run_dir` (so no developer `.env` is read) with this repo's code,
    under `prefix` (a profiler's command line) when one is given."""
    log_path = run_dir / f"{name}.log"
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        **env,
    }
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [*prefix, sys.executable, *args],
            cwd=run_dir,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Process(name=name, popen=popen, log_path=log_path, base_url=base_url)
