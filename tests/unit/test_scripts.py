"""Lua functions run alone, or several modules' as one script, each given its keys and arguments."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from broker.store.scripts import NOW_MS, ComposedScript, LuaFunction, LuaScript, Step

APPEND = LuaFunction(
    "append",
    """
local function append(keys, argv)
  return redis.call('APPEND', keys[1], argv[1] .. argv[2])
end
""",
    keys=1,
    args=2,
)
COUNT = LuaFunction(
    "count",
    """
local function count(keys, argv)
  redis.call('INCRBY', keys[1], argv[1])
  return {redis.call('GET', keys[1]), redis.call('GET', keys[2])}
end
""",
    keys=2,
    args=1,
)
# Calls `append`, which the script defines first (and once, when composed with it).
STAMP = LuaFunction(
    "stamp",
    """
local function stamp(keys, argv)
  append(keys, {argv[1], '@'})
  return now_ms() > 0 and 1 or 0
end
""",
    keys=1,
    args=1,
    calls=(APPEND, NOW_MS),
)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


async def test_a_function_runs_alone_as_its_own_script(client: aioredis.Redis) -> None:
    script = LuaScript(client, APPEND)
    assert await script(keys=["{t}:a"], args=["x", "y"]) == 2
    assert await client.get("{t}:a") == "xy"


async def test_a_script_redis_has_lost_is_loaded_again(client: aioredis.Redis) -> None:
    # As after a restart or a failover: Redis no longer knows the script by its SHA1.
    script, composed = LuaScript(client, APPEND), ComposedScript(client, [APPEND, COUNT])
    assert await script(keys=["{t}:a"], args=["x", "y"]) == 2
    await client.script_flush()
    assert await script(keys=["{t}:a"], args=["z", "w"]) == 4
    assert await composed(
        Step(APPEND, ["{t}:a"], ["1", "2"]), Step(COUNT, ["{t}:n", "{t}:a"], [3])
    ) == [6, ["3", "xyzw12"]]
    assert await client.get("{t}:a") == "xyzw12"


async def test_a_function_alone_is_refused_the_wrong_number_of_keys_or_arguments(
    client: aioredis.Redis,
) -> None:
    with pytest.raises(ValueError, match="append takes 1 keys and 2 arguments"):
        await LuaScript(client, APPEND)(keys=["{t}:a"], args=["x"])
    assert await client.exists("{t}:a") == 0


async def test_a_function_can_call_the_functions_it_names(client: aioredis.Redis) -> None:
    assert await LuaScript(client, STAMP)(keys=["{t}:a"], args=["x"]) == 1
    assert await client.get("{t}:a") == "x@"


async def test_a_called_function_composed_as_a_step_too_is_defined_once(
    client: aioredis.Redis,
) -> None:
    script = ComposedScript(client, [STAMP, APPEND])
    results = await script(Step(STAMP, ["{t}:a"], ["x"]), Step(APPEND, ["{t}:a"], ["y", "z"]))
    assert results == [1, 4]
    assert await client.get("{t}:a") == "x@yz"


async def test_composed_steps_each_see_their_own_keys_and_arguments(
    client: aioredis.Redis,
) -> None:
    script = ComposedScript(client, [APPEND, COUNT, APPEND])
    results = await script(
        Step(APPEND, ["{t}:a"], ["p", "q"]),
        Step(COUNT, ["{t}:n", "{t}:a"], [5]),
        Step(APPEND, ["{t}:b"], ["r", "s"]),
    )
    assert results == [2, ["5", "pq"], 2]
    assert await client.get("{t}:b") == "rs"


async def test_steps_that_are_not_the_composed_functions_are_refused(
    client: aioredis.Redis,
) -> None:
    script = ComposedScript(client, [APPEND, COUNT])
    with pytest.raises(ValueError, match="not the functions"):
        await script(Step(COUNT, ["{t}:n", "{t}:a"], [1]), Step(APPEND, ["{t}:a"], ["x", "y"]))
    assert await client.exists("{t}:n", "{t}:a") == 0


def test_a_step_with_the_wrong_number_of_keys_or_arguments_is_refused() -> None:
    with pytest.raises(ValueError, match="append takes 1 keys and 2 arguments"):
        Step(APPEND, ["{t}:a", "{t}:b"], ["x", "y"])
