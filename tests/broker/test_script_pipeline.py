"""The script pipeline on a real redis-server: batches, per-script errors, callers that give up,
a stall, a dropped connection and closing. Each script is sent once, whatever happens."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.store.connection import NodeClient
from tests.support.servers import RedisServer

SOCKET_TIMEOUT_S = 0.3
# Answers its argument, and counts itself: a script sent twice would count twice.
ECHO = "redis.call('INCR', KEYS[1]) return ARGV[1]"
FAIL = "return redis.error_reply('refused ' .. ARGV[1])"
BUSY_100_MS = """
local t = redis.call('TIME')
while true do
  local n = redis.call('TIME')
  if (n[1] - t[1]) * 1e6 + (n[2] - t[2]) > 100000 then return 'slow' end
end"""


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[NodeClient]:
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S, timeout=1
    )
    node = NodeClient.from_pool(pool)
    assert isinstance(node, NodeClient)
    yield node
    await node.aclose()


async def evalsha(client: NodeClient, sha: str, *args: str) -> object:
    return await client.execute_command("EVALSHA", sha, 1, "count", *args)


async def test_concurrent_scripts_each_get_their_own_reply_down_one_connection(
    client: NodeClient, redis_server: RedisServer
) -> None:
    sha = await client.script_load(ECHO)
    replies = await asyncio.gather(*(evalsha(client, sha, str(n)) for n in range(500)))
    assert replies == [str(n) for n in range(500)]
    assert await client.get("count") == "500"
    # All down one connection, where the pool would have opened one per script in flight.
    sending = [c for c in redis_server.client().client_list() if c["cmd"] == "evalsha"]
    assert len(sending) == 1


@pytest.mark.parametrize(
    ("argument", "sent"),
    [
        ("zoë ✓", "zoë ✓".encode()),
        (b"\xff\x00", b"\xff\x00"),
        (-17, b"-17"),
        (2**70, str(2**70).encode()),
        (0.1, b"0.1"),  # redis-py's repr, which hiredis writes too
    ],
)
async def test_every_argument_reaches_redis_as_redis_py_sends_it(
    client: NodeClient, argument: object, sent: bytes
) -> None:
    sha = await client.script_load("return redis.sha1hex(ARGV[1])")
    received = await client.execute_command("EVALSHA", sha, 0, argument)
    assert received == hashlib.sha1(sent, usedforsecurity=False).hexdigest()
    # And the pool's way, redis-py packing it (an option keeps the command off the pipeline).
    assert await client.execute_command("EVALSHA", sha, 0, argument, keys=[]) == received


async def test_an_argument_redis_py_refuses_fails_its_own_caller_alone(client: NodeClient) -> None:
    sha = await client.script_load(ECHO)
    refused, answered = await asyncio.gather(
        evalsha(client, sha, True),  # type: ignore[arg-type]
        evalsha(client, sha, "fine"),
        return_exceptions=True,
    )
    assert isinstance(refused, DataError) and answered == "fine"


async def test_a_scripts_error_fails_that_script_alone(client: NodeClient) -> None:
    echo, fail = await client.script_load(ECHO), await client.script_load(FAIL)
    outcomes = await asyncio.gather(
        evalsha(client, echo, "a"), evalsha(client, fail, "b"), evalsha(client, echo, "c"),
        return_exceptions=True,
    )  # fmt: skip
    assert outcomes[0] == "a" and outcomes[2] == "c"
    assert isinstance(outcomes[1], ResponseError) and "refused b" in str(outcomes[1])


async def test_an_unknown_script_is_a_noscript_error(client: NodeClient) -> None:
    with pytest.raises(NoScriptError):
        await evalsha(client, "0" * 40, "x")
    # The reply was read: the next script gets its own.
    assert await evalsha(client, await client.script_load(ECHO), "next") == "next"


async def test_a_caller_that_gives_up_leaves_the_next_reply_to_the_next_caller(
    client: NodeClient,
) -> None:
    slow = await client.script_load(BUSY_100_MS)
    echo = await client.script_load(ECHO)
    waiting = asyncio.ensure_future(evalsha(client, slow))
    await asyncio.sleep(0.02)
    waiting.cancel()
    assert await evalsha(client, echo, "mine") == "mine"
    assert waiting.cancelled()


async def test_a_stall_fails_the_batch_within_the_socket_timeout_and_sends_nothing_twice(
    client: NodeClient, redis_server: RedisServer
) -> None:
    sha = await client.script_load(ECHO)
    assert await evalsha(client, sha, "warm") == "warm"
    redis_server.client().client_pause(int(1000 * 3 * SOCKET_TIMEOUT_S))
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(evalsha(client, sha, str(n)) for n in range(20)), return_exceptions=True
    )
    assert time.monotonic() - started < SOCKET_TIMEOUT_S + 0.3
    assert all(isinstance(outcome, RedisTimeoutError) for outcome in outcomes), outcomes
    assert len({id(outcome) for outcome in outcomes}) == 20  # each its own exception
    await asyncio.sleep(3 * SOCKET_TIMEOUT_S)
    assert await evalsha(client, sha, "after") == "after"
    # The warm-up, the stalled batch at most once (it may run when the pause ends), the last.
    assert 2 <= int(str(await client.get("count"))) <= 1 + 20 + 1


async def test_a_dropped_connection_fails_its_batch_and_the_next_one_reconnects(
    client: NodeClient, redis_server: RedisServer
) -> None:
    sha = await client.script_load(ECHO)
    assert await evalsha(client, sha, "before") == "before"
    admin = redis_server.client()
    for line in admin.client_list():
        if line["cmd"] == "evalsha":
            admin.client_kill_filter(_id=line["id"])
    outcome = await asyncio.gather(evalsha(client, sha, "lost"), return_exceptions=True)
    assert isinstance(outcome[0], RedisConnectionError)
    assert await evalsha(client, sha, "after") == "after"


async def test_closing_fails_what_waits_and_refuses_what_comes(
    client: NodeClient, redis_server: RedisServer
) -> None:
    sha = await client.script_load(ECHO)
    redis_server.client().client_pause(500)
    waiting = asyncio.ensure_future(evalsha(client, sha, "x"))
    await asyncio.sleep(0.05)
    await client.aclose()
    with pytest.raises(RedisConnectionError):
        await waiting
    with pytest.raises(RedisConnectionError):
        await evalsha(client, sha, "y")


def _script_connections(redis_server: RedisServer, last_command: str = "evalsha") -> list[str]:
    return [c["id"] for c in redis_server.client().client_list() if c["cmd"] == last_command]


async def test_a_connection_closed_while_idle_is_replaced_before_the_next_script(
    client: NodeClient, redis_server: RedisServer
) -> None:
    sha = await client.script_load(ECHO)
    assert await evalsha(client, sha, "before") == "before"
    [first] = _script_connections(redis_server)
    redis_server.client().client_kill_filter(_id=first)
    await asyncio.sleep(0.1)  # the close reaches the event loop
    assert await evalsha(client, sha, "after") == "after"  # nothing was sent on the closed one
    assert _script_connections(redis_server) != [first]
    assert await client.get("count") == "2"


async def test_a_connection_idle_past_the_health_check_is_pinged_first(
    redis_url: str, redis_server: RedisServer
) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S, health_check_interval=0.2
    )
    node = NodeClient.from_pool(pool)
    assert isinstance(node, NodeClient)
    try:
        sha = await node.script_load(ECHO)
        assert await evalsha(node, sha, "a") == "a"
        admin = redis_server.client()
        admin.config_resetstat()
        assert await evalsha(node, sha, "b") == "b"  # recently read: no PING
        assert "cmdstat_ping" not in admin.info("commandstats")
        await asyncio.sleep(0.3)
        assert await evalsha(node, sha, "c") == "c"
        assert admin.info("commandstats")["cmdstat_ping"]["calls"] == 1
    finally:
        await node.aclose()


async def test_a_server_turned_replica_fails_the_script_and_the_next_one_reconnects(
    client: NodeClient, redis_server: RedisServer
) -> None:
    sha = await client.script_load(ECHO)
    assert await evalsha(client, sha, "before") == "before"
    [first] = _script_connections(redis_server)
    admin = redis_server.client()
    admin.replicaof("127.0.0.1", 1)  # a master that never answers
    try:
        with pytest.raises(ReadOnlyError):
            await evalsha(client, sha, "refused")
    finally:
        admin.replicaof("NO", "ONE")
    # A failover's new master is found by connecting again (Sentinel names it then).
    assert await evalsha(client, sha, "after") == "after"
    assert _script_connections(redis_server) != [first]


async def test_a_script_is_loaded_down_the_connection_that_runs_it(
    client: NodeClient, redis_server: RedisServer
) -> None:
    """After a failover, a pooled connection may still be on the old master, a replica now,
    which loads scripts too: a script loaded there would be unknown where it runs."""
    sha = await client.script_load(ECHO)
    assert sha == hashlib.sha1(ECHO.encode(), usedforsecurity=False).hexdigest()
    [loader] = _script_connections(redis_server, "script|load")
    assert await evalsha(client, sha, "after") == "after"
    assert _script_connections(redis_server) == [loader]
