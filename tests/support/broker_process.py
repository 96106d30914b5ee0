"""`broker serve` as a real process on loopback, its JSON log lines collected as they come."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port

REPOSITORY = Path(__file__).parents[2]
SETTING_PREFIXES = ("GLADIA_", "BROKER_", "REDIS_", "LOG_LEVEL", "FORWARDED_ALLOW_IPS")


@dataclass
class BrokerProcess:
    """One `broker serve` process: where it listens, and what it logged so far."""

    port: int
    process: subprocess.Popen[str]
    settings: Mapping[str, str]
    records: list[dict[str, Any]] = field(default_factory=list)
    raw_lines: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def access_records(self) -> list[dict[str, Any]]:
        return [record for record in self.records if record.get("logger") == "broker.access"]

    def access_record(self, request_id: str, deadline_s: float = 5.0) -> dict[str, Any] | None:
        """The access line of a request, waiting for it briefly; None if this process has none."""
        deadline = time.monotonic() + deadline_s
        while True:
            for record in self.access_records():
                if record.get("request_id") == request_id:
                    return record
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running_broker_process(
    settings: Mapping[str, str], port: int | None = None, host: str = "127.0.0.1"
) -> Iterator[BrokerProcess]:
    """`python -m broker serve` with exactly `settings` as its configuration (no .env read)."""
    port = port or free_port()
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(SETTING_PREFIXES)
    }
    environment.update(settings)
    environment["PYTHONPATH"] = str(REPOSITORY)
    with tempfile.TemporaryDirectory(prefix="broker-serve-") as workdir:
        process = subprocess.Popen(
            [sys.executable, "-m", "broker", "serve", "--host", host, "--port", str(port)],
            cwd=workdir,  # an empty directory: no .env file is read
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        broker = BrokerProcess(port, process, settings, host=host)
        reader = threading.Thread(target=_collect, args=(broker,), daemon=True)
        reader.start()
        try:
            wait_for(
                lambda: process.poll() is not None or _ready(f"{broker.base_url}/healthz"),
                "the broker to answer /healthz",
            )
            assert process.poll() is None, "\n".join(broker.raw_lines)
            yield broker
        finally:
            try:
                broker.stop(timeout_s=15)
            except subprocess.TimeoutExpired:
                broker.stop(signal.SIGKILL)
            reader.join(timeout=5)
            assert process.stderr is not None
            process.stderr.close()  # else a ResourceWarning when the process object is freed


def _collect(broker: BrokerProcess) -> None:
    assert broker.process.stderr is not None
    for line in broker.process.stderr:
        line = line.rstrip("\n")
        broker.raw_lines.append(line)
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            broker.records.append(record)
