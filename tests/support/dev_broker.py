"""`broker dev` as `make run` starts it: a free port, nothing configured, its banner read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.support.servers import free_port

BROKER = [sys.executable, "-m", "broker"]
# No setting of the developer's shell reaches the broker: the command runs as on a fresh machine.
CLEAN_ENV = {
    key: value
    for key, value in os.environ.items()
    if not key.startswith(("GLADIA_", "BROKER_", "REDIS_"))
}


@dataclass(frozen=True)
class DevBroker:
    port: int
    # The banner's `export …` lines, as a person copies them into a shell.
    exports: tuple[str, ...]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running_dev_broker(timeout_s: float = 30) -> Iterator[DevBroker]:
    """Until its banner has printed both exports and /healthz answers; stopped after."""
    port = free_port()
    # As a context manager, Popen closes the stdout pipe it opened once the process is gone.
    with subprocess.Popen(
        [*BROKER, "dev", "--port", str(port), "--simulator-port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=CLEAN_ENV,
    ) as process:
        try:
            assert process.stdout is not None
            banner = ""
            deadline = time.monotonic() + timeout_s
            while "export SERVICE_KEY=" not in banner and time.monotonic() < deadline:
                banner += process.stdout.readline()
            exports = tuple(line.strip() for line in banner.splitlines() if "export " in line)
            assert len(exports) == 2, banner
            broker = DevBroker(port, exports)
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{broker.base_url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield broker
        finally:
            process.terminate()
            process.wait(timeout=10)
