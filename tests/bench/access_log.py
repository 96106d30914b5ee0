"""CPU cost of the access line and of the request metrics, per request, in one process.

    /work/main/.venv/bin/python -m tests.bench.access_log [--requests N] [--rounds R]

Drives the real EdgeMiddleware (around a bare ASGI app that answers like a lookup, with an
attempt guard that lets every request through unchecked, as most are) with
the production log set-up, `configure_logging(json_lines=True)` and `install_redaction(...)`,
whose handler writes every JSON line to a real stream: a file (`--output`, default a scratch
file; `/dev/null` works too). The figures are CPU microseconds (process time) per request,
the median of the rounds:

- `bare app`: the inner app alone (what the driver itself costs);
- `middleware, line off`: the middleware with `broker.access` above INFO (request id, context,
  timing, but no line);
- `middleware, line on`: the same with the access line written;
- `middleware, line + metrics`: what the broker runs (line and Metrics.observe_request);
- `Metrics.observe_request`: the call alone, on the labels of a lookup.

`access line` is `line on - line off`: what one line costs, from `logger.info` to the write.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing  # noqa: F401  # `broker serve` has it (uvicorn imports it): see below
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from broker.observability.logs import AccessLog, configure_logging, install_redaction
from broker.observability.metrics import Metrics
from broker.web.edge import CorsHeaders, EdgeMiddleware

# With multiprocessing imported, logging asks it for the process name of every record, as it
# does in `broker serve`; without, this process would measure less than the broker spends.
ROUTE = "/v1/sessions/{session_id}"
# What `settings.all_secrets()` holds in a typical deployment: the Gladia key, a secret key,
# a service key, a webhook secret.
SECRETS = (
    "bench-gladia-key-0123456789abcdef0123",
    "bench-secret-key-abcdefabcdefabcdefabcdefabcdefabcdef",
    "bench-service-key-9876543210fedcba",
    "bench-webhook-secret-55aa55aa55aa",
)
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"authorization", b"Bearer abcdefgh.ijklmnop.qrstuvwxyz0123456789abcd"),
]
BODY = b'{"id":"3f9c0a7d-2b1e-4c5f-8a6b-9d0e1f2a3b4c","created_at":"2025-01-01T00:00:00Z"}'


async def lookup(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers like GET /v1/sessions/{id}: the router names the endpoint, then one response."""
    scope["endpoint"] = lookup
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": BODY})


async def receive() -> Message:
    return {"type": "http.request", "body": b""}


async def send(message: Message) -> None:
    return None


class UncheckedLimits:
    """The attempt guard's answer for an address with no recent miss: no look-up."""

    async def check_address(self, address: str) -> bool:
        return True

    def end_unchecked(self, address: str) -> None:
        return None


# What the edge reads of the app: `app.state.resources.limits`.
APP = SimpleNamespace(state=SimpleNamespace(resources=SimpleNamespace(limits=UncheckedLimits())))


def scope() -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/v1/sessions/3f9c0a7d-2b1e-4c5f-8a6b-9d0e1f2a3b4c",
        "headers": list(HEADERS),
        "client": ("127.0.0.1", 52344),
        "app": APP,
    }


def edge(metrics: Metrics | None = None) -> EdgeMiddleware:
    cors = CorsHeaders((), methods=["GET"], headers=[], expose=[], max_age_s=600)
    return EdgeMiddleware(lookup, access=AccessLog({lookup: ROUTE}, metrics), cors=cors)


AsgiCall = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]


def cpu_us_per_request(app: AsgiCall, requests: int) -> float:
    async def drive() -> float:
        gc.collect()
        started = time.process_time_ns()
        for _ in range(requests):
            await app(scope(), receive, send)
        return (time.process_time_ns() - started) / requests / 1000

    return asyncio.run(drive())


def cpu_us_per_observe(metrics: Metrics, calls: int) -> float:
    observe = metrics.observe_request
    gc.collect()
    started = time.process_time_ns()
    for _ in range(calls):
        observe("GET", ROUTE, 200, 0.00042)
    return (time.process_time_ns() - started) / calls / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", type=Path, help="where the lines go (default: scratch file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="broker-bench-") as scratch:
        output = args.output or Path(scratch) / "access.log"
        # The handler configure_logging installs writes to sys.stderr, as `broker serve` does;
        # stderr is line-buffered, so every line is one write, as it is in production. Not a
        # `with`: the handler writes to the stream until the last round, which closes it.
        stream = open(output, "w", buffering=1, encoding="utf-8")  # noqa: SIM115  # see above
        real_stderr, sys.stderr = sys.stderr, stream
        try:
            install_redaction(SECRETS)
            configure_logging(json_lines=True, level="INFO")
        finally:
            sys.stderr = real_stderr
        access = logging.getLogger("broker.access")
        metrics = Metrics()
        plain = edge()
        counted = edge(metrics)
        samples: dict[str, list[float]] = {
            name: []
            for name in (
                "bare app",
                "middleware, line off",
                "middleware, line on",
                "middleware, line + metrics",
                "Metrics.observe_request",
            )
        }
        warmup = 2_000
        cpu_us_per_request(counted, warmup)  # warm up: caches, the first write, the label children
        for _ in range(args.rounds):
            samples["bare app"].append(cpu_us_per_request(lookup, args.requests))
            access.setLevel(logging.WARNING)
            samples["middleware, line off"].append(cpu_us_per_request(plain, args.requests))
            access.setLevel(logging.NOTSET)
            samples["middleware, line on"].append(cpu_us_per_request(plain, args.requests))
            samples["middleware, line + metrics"].append(cpu_us_per_request(counted, args.requests))
            samples["Metrics.observe_request"].append(cpu_us_per_observe(metrics, args.requests))
        stream.close()
        lines = sum(1 for _ in output.open(encoding="utf-8"))

    median = {name: statistics.median(values) for name, values in samples.items()}
    median["access line (on - off)"] = (
        median["middleware, line on"] - median["middleware, line off"]
    )
    median["middleware, all (- bare app)"] = (
        median["middleware, line + metrics"] - median["bare app"]
    )
    print(f"{args.rounds} rounds of {args.requests} requests, CPU µs per request (median)")
    for name, value in median.items():
        print(f"  {name:<30} {value:8.2f}")
    expected = warmup + 2 * args.rounds * args.requests
    where = "a scratch file" if args.output is None else output
    print(f"lines written: {lines} of {expected} to {where}")


if __name__ == "__main__":
    main()
