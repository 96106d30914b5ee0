"""Paced load for the latency rows: N clients, each pausing a random (exponential) time between
its requests, so requests arrive spread out as real users' do, never as one burst. Runs as its
own process; prints one JSON line with the latencies and the CPU it used itself.

wrk paces too, but all its connections send their first request at the same instant, and that
burst alone would decide a p99; here every client starts after its own random pause, and the
first second is not counted.

    python -m tests.bench.paced --url URL --requests FILE --rate 150 --clients 50 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
from pathlib import Path

import aiohttp

from tests.bench.load import PreparedRequest

WARMUP_S = 1.0


def read_requests(path: Path) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    """The harness's prepared requests: METHOD, PATH, HEADER NAME, HEADER VALUE, BODY."""
    prepared = []
    for line in path.read_text().splitlines():
        request = PreparedRequest.from_line(line)
        body = request.body.encode() if request.body else None
        prepared.append((request.method, request.path, request.headers(), body))
    return prepared


async def run(
    url: str, requests_file: Path, rate: float, clients: int, duration_s: float
) -> dict[str, object]:
    prepared = read_requests(requests_file)
    mean_pause_s = clients / rate
    latencies_ms: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    started = time.monotonic()
    measure_from, stop_at = started + WARMUP_S, started + WARMUP_S + duration_s
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as session:

        async def client(number: int) -> None:
            nonlocal errors
            turn = random.randrange(len(prepared))
            await asyncio.sleep(random.expovariate(1 / mean_pause_s))
            while (now := time.monotonic()) < stop_at:
                method, target, headers, body = prepared[turn % len(prepared)]
                turn += 1
                try:
                    async with session.request(
                        method, target, headers=headers, data=body
                    ) as answer:
                        await answer.read()
                        status = answer.status
                except aiohttp.ClientError:
                    errors += 1
                    status = 0
                if now >= measure_from:
                    latencies_ms.append((time.monotonic() - now) * 1000)
                    statuses[status] = statuses.get(status, 0) + 1
                await asyncio.sleep(random.expovariate(1 / mean_pause_s))

        await asyncio.gather(*(client(n) for n in range(clients)))
    latencies_ms.sort()

    def percentile(p: float) -> float:
        return (
            latencies_ms[min(len(latencies_ms) - 1, int(p / 100 * len(latencies_ms)))]
            if latencies_ms
            else 0.0
        )

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": len(latencies_ms),
        "duration_us": int(duration_s * 1e6),
        "errors": {"socket": errors, "status": sum(n for s, n in statuses.items() if s >= 400)},
        "latency_us": {
            "p50": int(percentile(50) * 1000),
            "p90": int(percentile(90) * 1000),
            "p99": int(percentile(99) * 1000),
            "max": int((latencies_ms[-1] if latencies_ms else 0) * 1000),
            "mean": sum(latencies_ms) / max(len(latencies_ms), 1) * 1000,
        },
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second, in all")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    import uvloop  # uvicorn[standard] brings it; a faster loop measures more of the server

    result = uvloop.run(run(args.url, args.requests, args.rate, args.clients, args.duration))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
