"""Time the limit scripts on a real loopback redis-server: `python -m tests.support.bench_limits`.

Prints microseconds per operation (median and p99 over sequential calls, one connection pool),
the added cost a create and a plain request pay for their limits.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from broker.policy.limits import Limits
from broker.settings import Settings
from broker.store.connection import open_redis
from tests.support.leases import confirm_leases
from tests.support.servers import running_redis_server

ROUNDS = 3000


async def timed(label: str, operation: Callable[[int], Awaitable[None]]) -> None:
    samples = []
    for n in range(ROUNDS):
        started = time.perf_counter()
        await operation(n)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99)]
    print(f"{label:<44} p50 {p50:7.0f} µs   p99 {p99:7.0f} µs")


async def main(url: str) -> None:
    settings = Settings(
        redis_url=url,
        max_live_per_subject=10**6,
        creates_per_minute=10**6,
        account_max_live=10**6,
        failed_attempts_per_minute=10**6,
    )
    client = open_redis(settings)
    limits = Limits(client, settings)
    ids = [uuid.uuid4().hex for _ in range(ROUNDS)]

    async def ping(n: int) -> None:
        await client.ping()

    async def check(n: int) -> None:
        if await limits.check_address("203.0.113.7"):
            limits.end_unchecked("203.0.113.7")

    async def check_after_miss(n: int) -> None:
        await limits.check_address("203.0.113.8")

    async def admit(n: int) -> None:
        await limits.admit(f"s{n % 100}", ids[n])

    async def confirm(n: int) -> None:
        await confirm_leases(client, limits, f"s{n % 100}", ids[n], f"session-{ids[n]}")

    async def release(n: int) -> None:
        await limits.release_lease(f"s{n % 100}", f"session-{ids[n]}")

    await limits.admit("warm", "warm")  # scripts loaded
    await confirm_leases(client, limits, "warm", "warm", "warm")
    await limits.check_address("203.0.113.7")
    await timed("baseline: one PING round trip", ping)
    await limits.record_miss("203.0.113.8", "bench")  # this instance now looks it up
    await timed("address check, never missed, one at a time", check)
    await timed("address check, missed within the window", check_after_miss)
    await timed("admit: subject + account scripts (create)", admit)
    await timed("confirm: two scripts, concurrent (create)", confirm)
    await timed("release_lease (end, delete, final result)", release)
    await client.aclose()


if __name__ == "__main__":
    with running_redis_server() as server:
        asyncio.run(main(server.url))
