"""The broker on each Redis an operator can give it: Cluster, Sentinel (with a failover), TLS.

The rest of tests/broker runs on a single server and on the Cluster (see `redis_topology`);
this file adds what only one topology can show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from broker.identity.credentials import Subject
from broker.settings import Settings
from broker.store.connection import ClusterClient, open_redis
from tests.broker.conftest import BrokerFactory
from tests.support.redis_topologies import (
    RedisClusterNodes,
    SentinelGroup,
    TlsRedis,
    running_sentinel_group,
    running_tls_redis,
)

REDIS_PASSWORD = "canary-redis-password-3c1e9b7d5f"


async def core_flow(broker: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """Create, find again, list, fetch the result, delete: the session id."""
    created = await broker.post("/v1/sessions", headers=headers, json={"sample_rate": 16000})
    assert created.status_code == 201, created.text
    session = created.json()
    found = await broker.get(f"/v1/sessions/{session['id']}", headers=headers)
    assert found.status_code == 200 and found.json()["url"] == session["url"]
    listed = await broker.get("/v1/sessions", headers=headers)
    assert session["id"] in [item["id"] for item in listed.json()["items"]]
    result = await broker.get(f"/v1/sessions/{session['id']}/result", headers=headers)
    assert result.status_code == 200
    return str(session["id"])


@pytest.fixture
def redis_topology(redis_url: str) -> tuple[str, bool]:
    """These tests choose their Redis themselves; the base settings use the single server."""
    return redis_url, False


@pytest.fixture(scope="module")
def sentinel_group() -> Iterator[SentinelGroup]:
    with running_sentinel_group() as group:
        yield group


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TlsRedis]:
    with running_tls_redis(REDIS_PASSWORD) as server:
        yield server


async def test_on_the_cluster_every_key_is_hash_tagged_by_owner_and_expires(
    broker_factory: BrokerFactory,
    mint: Callable[[str], dict[str, str]],
    redis_cluster: RedisClusterNodes,
    redis_cluster_url: str,
) -> None:
    async with broker_factory(redis_url=redis_cluster_url, redis_cluster=True) as broker:
        for user in ("alice", "bob", "carol", "dave"):
            await core_flow(broker, mint(user))
    keys = redis_cluster.keys()
    assert len(keys) >= 8
    tags = set()
    for key in keys:
        if key.startswith("broker:session-owner:"):
            continue  # webhooks' session → owner lookup: one key, never in a multi-key operation
        assert key.startswith("broker:{") and "}:" in key, key
        tags.add(key[key.index("{") : key.index("}") + 1])
    # One tag per user, and the account-wide leases of their own.
    users = {"{" + Subject(user).key + "}" for user in ("alice", "bob", "carol", "dave")}
    assert users <= tags <= users | {"{account}"}
    # The four owners' keys are spread over the masters, and every key expires.
    assert sum(1 for server in redis_cluster.servers if server.client().dbsize()) >= 2
    for server in redis_cluster.servers:
        client = server.client()
        for stored in client.keys("*"):
            assert client.ttl(stored) > 0, stored


async def test_the_cluster_refuses_an_operation_whose_keys_are_not_tagged_alike(
    redis_cluster_url: str,
) -> None:
    """What the tags prevent: the cluster is a real check, not a lenient stand-in."""
    client = open_redis(Settings(redis_url=redis_cluster_url, redis_cluster=True))
    assert isinstance(client, RedisCluster)
    with pytest.raises((RedisClusterException, ResponseError)):
        async with client.pipeline(transaction=True) as pipe:
            pipe.set("broker:{alice}:x", "1")
            pipe.set("broker:{bob}:x", "1")
            await pipe.execute()
    await client.aclose()


async def test_the_broker_runs_on_the_master_that_sentinel_names_and_follows_a_failover(
    broker_factory: BrokerFactory,
    mint: Callable[[str], dict[str, str]],
    sentinel_group: SentinelGroup,
) -> None:
    alice = mint("alice")
    async with broker_factory(redis_url=sentinel_group.url, redis_cluster=False) as broker:
        before = await core_flow(broker, alice)
        old_master = sentinel_group.master_port()
        sentinel_group.fail_over()
        assert sentinel_group.master_port() != old_master

        # The same running broker finds the new master: a write that reaches the demoted one
        # is answered 503 (never retried blindly), and the following ones succeed.
        statuses: list[int] = []
        deadline = time.monotonic() + 15
        while not statuses or statuses[-1] != 201:
            assert time.monotonic() < deadline, f"never reached the new master: {statuses}"
            response = await broker.post("/v1/sessions", headers=alice, json={})
            statuses.append(response.status_code)
        assert set(statuses) <= {201, 503}
        assert len(statuses) <= 3
        after = response.json()["id"]
        found = await broker.get(f"/v1/sessions/{before}", headers=alice)
        assert found.status_code == 200

    new_master = redis.Redis(host="127.0.0.1", port=sentinel_group.master_port())
    assert new_master.exists(f"broker:{{{Subject('alice').key}}}:session:{after}")


async def test_the_broker_speaks_tls_with_a_password_and_verifies_the_server(
    broker_factory: BrokerFactory,
    mint: Callable[[str], dict[str, str]],
    tls_redis: TlsRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with broker_factory(redis_url=tls_redis.url, redis_cluster=False) as broker:
        await core_flow(broker, mint("alice"))
        assert (await broker.get("/readyz")).status_code == 200

    # Without the CA that signed the server's certificate, the connection is refused.
    unverified = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{tls_redis.port}/0"
    async with broker_factory(redis_url=unverified, redis_cluster=False) as broker:
        assert (await broker.get("/readyz")).status_code == 503

    for record in caplog.records:
        assert REDIS_PASSWORD not in record.getMessage()


async def test_a_cold_burst_on_the_cluster_queues_instead_of_failing(
    redis_cluster_url: str,
) -> None:
    """redis-py's cluster client refuses past its per-node pool and races on first use."""
    client = open_redis(Settings(redis_url=redis_cluster_url, redis_cluster=True))
    outcomes = await asyncio.gather(
        *(client.set(f"broker:{{user-{n % 9}}}:burst:{n}", n, ex=60) for n in range(300)),
        return_exceptions=True,
    )
    await client.aclose()
    assert [o for o in outcomes if isinstance(o, BaseException)] == []


async def test_a_cluster_client_out_of_slots_fails_after_the_pool_timeout(
    redis_cluster_url: str,
) -> None:
    settings = Settings(
        redis_url=redis_cluster_url,
        redis_cluster=True,
        redis_max_connections=1,
        redis_pool_timeout_s=0.2,
    )
    client = open_redis(settings)
    assert isinstance(client, ClusterClient)
    async with client.command_slot():
        started = time.monotonic()
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await client.get("broker:{alice}:x")
        assert 0.15 < time.monotonic() - started < 1.0
    assert await client.get("broker:{alice}:x") is None
    await client.aclose()


async def test_an_unreachable_cluster_is_a_redis_error_answered_503(
    broker_factory: BrokerFactory, mint: Callable[[str], dict[str, str]]
) -> None:
    client = open_redis(Settings(redis_url="redis://127.0.0.1:1/0", redis_cluster=True))
    with pytest.raises(RedisError):
        await client.ping()
    await client.aclose()
    async with broker_factory(redis_url="redis://127.0.0.1:1/0", redis_cluster=True) as broker:
        assert (await broker.get("/readyz")).status_code == 503
        listed = await broker.get("/v1/sessions", headers=mint("alice"))
        assert listed.status_code == 503
        assert listed.headers["retry-after"] == "5"
