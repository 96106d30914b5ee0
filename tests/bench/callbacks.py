"""Callbacks per second one broker worker ingests, measured with wrk on loopback.

    /work/main/.venv/bin/python -m tests.bench.callbacks [--mode distinct|duplicate]

Starts a real redis-server, the Gladia simulator and `broker serve` (one uvicorn worker, the
production settings path, INFO access logs to /dev/null), creates sessions through the broker so
Gladia holds real capability URLs, then drives POST /v1/callbacks/{capability} with
tests/bench/callbacks.lua and prints wrk's report.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from broker.identity.credentials import TokenService
from broker.settings import load_settings
from tests.support.servers import free_port, start_redis_server

HERE = Path(__file__).parent


def wait_until_up(url: str, deadline_s: float = 15) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("distinct", "duplicate"), default="distinct")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--profile", help="write the broker's cProfile stats to this file")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    with tempfile.TemporaryDirectory(prefix="broker-bench-") as scratch:
        redis = start_redis_server(Path(scratch))
        simulator_port, broker_port = free_port(), free_port()
        key = secrets.token_urlsafe(24)
        env = {
            **os.environ,
            "GLADIA_API_KEY": key,
            "GLADIA_API_URL": f"http://127.0.0.1:{simulator_port}",
            "REDIS_URL": redis.url,
            "BROKER_SECRET_KEYS": secrets.token_urlsafe(48),
            "BROKER_PUBLIC_URL": f"http://127.0.0.1:{broker_port}",
            "BROKER_MAX_LIVE_PER_SUBJECT": str(args.sessions),
            "BROKER_CREATES_PER_MINUTE": str(args.sessions),
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        }
        python = sys.executable
        processes = [
            subprocess.Popen(
                [python, "-m", "broker.simulator.standalone", "--port", str(simulator_port),
                 "--api-key", key, "--max-live-sessions", "1000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [python, *(["-m", "cProfile", "-o", args.profile] if args.profile else []),
                 "-m", "broker", "serve", "--host", "127.0.0.1", "--port", str(broker_port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
        ]  # fmt: skip
        try:
            base = f"http://127.0.0.1:{broker_port}"
            wait_until_up(f"http://127.0.0.1:{simulator_port}/v2/live")
            wait_until_up(f"{base}/healthz")
            targets = create_sessions(env, base, simulator_port, key, args.sessions)
            targets_file = Path(scratch) / "targets.txt"
            targets_file.write_text("".join(f"{path} {sid}\n" for path, sid in targets))
            command = [
                wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}",
                "--latency", "-s", str(HERE / "callbacks.lua"), base,
            ]  # fmt: skip
            print(f"$ CALLBACK_MODE={args.mode} {' '.join(command)}", flush=True)
            subprocess.run(
                command,
                env={**os.environ, "CALLBACK_TARGETS": str(targets_file),
                     "CALLBACK_MODE": args.mode},
                check=True,
            )  # fmt: skip
            stored = redis.client().eval(
                "local n = 0 for _, k in ipairs(redis.call('KEYS', 'broker:*:events:*')) do "
                "n = n + redis.call('XLEN', k) end return n",
                0,
            )
            print(f"events in Redis streams afterwards: {stored}")
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)
            redis.stop()


def create_sessions(
    env: dict[str, str], base: str, simulator_port: int, key: str, count: int
) -> list[tuple[str, str]]:
    """Sessions created through the broker; their capability paths as Gladia holds them."""
    settings = load_settings(environ=env, env_file=None)
    tokens = TokenService(settings.secret_keys, 3600, 3600)
    headers = {"Authorization": f"Bearer {tokens.mint('bench-user').token}"}
    targets = []
    for _ in range(count):
        created = httpx.post(f"{base}/v1/sessions", headers=headers, json={}, timeout=10)
        created.raise_for_status()
        session_id = created.json()["id"]
        upstream = httpx.get(
            f"http://127.0.0.1:{simulator_port}/v2/live/{session_id}",
            headers={"x-gladia-key": key},
            timeout=10,
        ).json()
        url = upstream["request_params"]["callback_config"]["url"]
        targets.append(("/v1/callbacks/" + url.rsplit("/", 1)[1], session_id))
    return targets


if __name__ == "__main__":
    main()
