"""What each request costs in Redis, measured with INFO commandstats on the real server.

Keeps the table of docs/policy-and-limits.md honest: a change that adds a round trip to a hot
path fails here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.broker.conftest import Simulator
from tests.support.servers import RedisServer

Headers = Callable[[str], dict[str, str]]
# Sent by redis-py when it opens a connection, not by a request.
_CONNECTION_SETUP = {"client|setinfo", "client|setname", "client|maint_notifications", "hello"}


@pytest.fixture
def redis_topology(redis_url: str) -> tuple[str, bool]:
    """Counted on the single server whose INFO commandstats it reads (not on the Cluster)."""
    return redis_url, False


def commands(redis_server: RedisServer) -> Counter[str]:
    stats = redis_server.client().info("commandstats")
    counted: Counter[str] = Counter()
    for name, values in stats.items():
        command = name.removeprefix("cmdstat_")
        if command not in _CONNECTION_SETUP and command not in ("config|resetstat", "info"):
            counted[command] = int(values["calls"])
    return counted


async def cost(redis_server: RedisServer, request: Callable[[], Awaitable[int]]) -> Counter[str]:
    redis_server.client().config_resetstat()
    await request()
    return commands(redis_server)


async def test_what_each_request_costs_in_redis(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, redis_server: RedisServer
) -> None:
    alice = mint("alice")

    async def create(headers: dict[str, str] = alice) -> int:
        response = await broker.post("/v1/sessions", headers=headers, json={})
        return response.status_code

    async def keyed_create() -> int:
        return await create({**alice, "Idempotency-Key": "order-1"})

    for _ in range(2):  # warm: connections opened, scripts loaded
        await create()
        await keyed_create()
        await broker.get("/v1/sessions/warm-up", headers=alice)

    plain = await cost(redis_server, create)
    # This address missed (the warm-up's 404), so the guard runs: 1 read-only script. Then
    # the credential's revocations and the subject's and account's admissions (1 script on one
    # node; 2 on a Cluster), then one script of the writes (the record with its index entry,
    # both leases confirmed, the callbacks that came early taken; on a Cluster the account's
    # lease is a script of its own beside it).
    assert plain["evalsha"] == 3
    # The record, in that script; nothing else is written for its callbacks; the owner for
    # webhooks is a `SET` of its own only when webhooks are configured.
    assert plain["set"] == 1
    assert "hset" not in plain
    assert plain["lrange"] == 1
    # The credential's revocations, read in the admission script (its guard): not a round trip.
    assert plain["hmget"] == 1
    assert "multi" not in plain and "exec" not in plain
    assert {"zadd", "zremrangebyscore", "zcard", "time"} <= set(plain)

    keyed = await cost(redis_server, lambda: keyed_create_fresh(broker, alice))
    # The same, plus claiming the key, renewing the claim just before the send, and settling it.
    assert keyed["evalsha"] == plain["evalsha"] + 3

    replay = await cost(redis_server, keyed_create)
    # Guard + claim (answers "done") + loading the record: no admission, no Gladia call.
    assert replay["evalsha"] == 2
    assert replay["get"] == 1
    assert "zadd" not in replay

    async def read() -> int:
        listed = await broker.get("/v1/sessions", headers=alice)
        session_id = listed.json()["items"][0]["id"]
        redis_server.client().config_resetstat()
        return (await broker.get(f"/v1/sessions/{session_id}", headers=alice)).status_code

    lookup = await cost(redis_server, read)
    # The guard, on top of one script reading the record and the credential's revocations
    # (commandstats counts the commands a script runs, too).
    assert lookup["evalsha"] == 2
    assert (lookup["get"], lookup["hmget"]) == (1, 1)

    async def missing() -> int:
        return (await broker.get("/v1/sessions/nope", headers=alice)).status_code

    miss = await cost(redis_server, missing)
    assert miss["evalsha"] == 3  # the guard, the read, and recording the miss

    async def unauthenticated() -> int:
        return await create({"Authorization": "Bearer nope"})

    refused = await cost(redis_server, unauthenticated)
    assert refused["evalsha"] == 2
    assert "get" not in refused


async def test_a_client_that_never_missed_pays_no_guard_round_trip(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, redis_server: RedisServer
) -> None:
    alice = mint("alice")
    for _ in range(2):  # warm: connections opened, scripts loaded
        created = await broker.post("/v1/sessions", headers=alice, json={})
    session_id = created.json()["id"]

    async def create() -> int:
        return (await broker.post("/v1/sessions", headers=alice, json={})).status_code

    plain = await cost(redis_server, create)
    assert plain["evalsha"] == 2  # admission, then the writes (one node: one script each)
    # The credential's revocations, read in the admission script (its guard): not a round trip.
    assert plain["hmget"] == 1

    async def read() -> int:
        return (await broker.get(f"/v1/sessions/{session_id}", headers=alice)).status_code

    # One round trip: a script reading the record and the credential's revocations on the
    # owner's slot (commandstats counts the commands a script runs, too).
    lookup = await cost(redis_server, read)
    assert lookup == Counter({"evalsha": 1, "get": 1, "hmget": 1})


async def keyed_create_fresh(broker: httpx.AsyncClient, alice: dict[str, str]) -> int:
    headers = {**alice, "Idempotency-Key": "order-fresh"}
    return (await broker.post("/v1/sessions", headers=headers, json={})).status_code
