"""Throughput of an authenticated `GET /v1/sessions/{id}`: one replica direct, and two behind nginx.

    python -m tests.support.bench_gateway [LOG_LEVEL]

Runs `wrk -t2 -c32 -d10s` against real `broker serve` processes sharing a real redis-server, the
gateway rendered from deploy/nginx/broker.conf with its per-address rate limit removed (one
benchmark client is one address). Needs wrk, nginx and redis-server. On a small machine every
part shares the same cores: read the figures as orders of magnitude.
"""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from broker.simulator import SimulatorConfig, create_simulator_app
from tests.broker.conftest import CANARY_GLADIA_KEY, CANARY_SECRET_KEY
from tests.broker.test_gateway import headers_for
from tests.support import gateway
from tests.support.broker_process import running_broker_process
from tests.support.servers import running_redis_server, serve_in_thread

RATE_LIMIT = "limit_req zone=broker_per_address burst=40 nodelay;"


def figure(pattern: str, out: str) -> str:
    """The first group of `pattern` in wrk's report; an error naming it when wrk did not say."""
    match = re.search(pattern, out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk's report has no {pattern!r}:\n{out}")
    return match.group(1)


def wrk(url: str, token: str) -> str:
    command = ["wrk", "-t2", "-c32", "-d10s", "--latency", "-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(figure(r"Requests/sec:\s+([\d.]+)", out))
    p50 = figure(r"^\s+50%\s+(\S+)", out)
    p99 = figure(r"^\s+99%\s+(\S+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return f"{rps:.0f} req/s, p50 {p50}, p99 {p99}, non-2xx {errors.group(1) if errors else 0}"


def main(log_level: str) -> None:
    simulator = create_simulator_app(SimulatorConfig(api_key=CANARY_GLADIA_KEY))

    def without_rate_limit(config_text: str) -> str:
        assert RATE_LIMIT in config_text
        return config_text.replace(RATE_LIMIT, "")

    with serve_in_thread(simulator) as simulator_url, running_redis_server() as redis:
        settings = {
            "GLADIA_API_KEY": CANARY_GLADIA_KEY,
            "GLADIA_API_URL": simulator_url,
            "REDIS_URL": redis.url,
            "BROKER_SECRET_KEYS": CANARY_SECRET_KEY,
            "BROKER_PUBLIC_URL": "https://broker.example",
            "LOG_LEVEL": log_level,
        }
        port = gateway.free_replica_port()
        first_address, second_address = gateway.REPLICA_ADDRESSES
        with (
            running_broker_process(settings, port, host=first_address) as first,
            running_broker_process(settings, port, host=second_address),
            gateway.running_gateway(port, edit_config=without_rate_limit) as nginx,
        ):
            headers = headers_for("bench")
            token = headers["Authorization"].split()[1]
            created = httpx.post(f"{first.base_url}/v1/sessions", headers=headers, json={})
            path = f"/v1/sessions/{created.json()['id']}"
            print(
                f"LOG_LEVEL={log_level} one replica, direct:  {wrk(first.base_url + path, token)}"
            )
            print(
                f"LOG_LEVEL={log_level} two replicas, gateway: {wrk(nginx.base_url + path, token)}"
            )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "INFO")
