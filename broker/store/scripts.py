"""Lua scripts written as functions: the one way the broker writes Lua.

Every script is a `LuaFunction` of `(keys, argv)`, which may call the functions it names in
`calls` (their definitions come first in the script). Run alone (`LuaScript`), it is an
ordinary script; run with others whose keys share one hash slot (`ComposedScript`), the steps
run in one round trip with no other command between them. Each key a function touches comes in
its `keys`, never built in Lua, so Redis Cluster can route the script to that slot; the settings
a function needs come in its `argv`, so one script text serves every instance. Like any script,
a step that errors stops the script without undoing the steps before it. A create's writes
after Gladia answers (the record, the subject's lease, the callback binding) are one such
script.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError

# Lua's KEYS and ARGV cut into each step's share.
_SLICE = """
local function slice(list, first, count)
  local part = {}
  for i = 1, count do part[i] = list[first + i - 1] end
  return part
end
"""


@dataclass(frozen=True)
class LuaFunction:
    """`source` defines `local function <name>(keys, argv)`, which returns a value (not nil)."""

    name: str
    source: str
    keys: int
    args: int
    calls: tuple[LuaFunction, ...] = ()

    def script(self) -> str:
        """The function as a script of its own."""
        return "\n".join([*_definitions([self]), f"return {self.name}(KEYS, ARGV)\n"])


# Milliseconds since the epoch from Redis's clock, so that instances with drifting clocks agree;
# a script that calls TIME replicates its effects, not itself.
NOW_MS = LuaFunction(
    "now_ms",
    """
local function now_ms()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
""",
    keys=0,
    args=0,
)


@dataclass(frozen=True)
class Step:
    """One function's part of a script: the keys and arguments it is given."""

    function: LuaFunction
    keys: Sequence[str]
    args: Sequence[str | int | float]

    def __post_init__(self) -> None:
        if (len(self.keys), len(self.args)) != (self.function.keys, self.function.args):
            raise ValueError(f"{self.function.name} takes {self.function.keys} keys and "
                             f"{self.function.args} arguments")  # fmt: skip


def _definitions(functions: Iterable[LuaFunction]) -> list[str]:
    """Each function's source once, after the sources of the functions it calls."""
    ordered: dict[LuaFunction, None] = {}

    def add(function: LuaFunction) -> None:
        for called in function.calls:
            add(called)
        ordered.setdefault(function, None)

    for function in functions:
        add(function)
    return [function.source for function in ordered]


def compose(functions: Sequence[LuaFunction], *, guarded: bool = False) -> str:
    """One script running `functions` in order; it returns the list of their results.

    `guarded`: the first function is a guard, which answers '' to let the others run, or a
    refusal, which ends the script: it then returns the refusal alone, in a list.
    """
    lines = [_SLICE, *_definitions(functions)]
    key, arg = 1, 1
    for index, function in enumerate(functions):
        lines.append(
            f"local result{index} = {function.name}("
            f"slice(KEYS, {key}, {function.keys}), slice(ARGV, {arg}, {function.args}))"
        )
        if guarded and index == 0:
            lines.append("if result0 ~= '' then return {result0} end")
        key, arg = key + function.keys, arg + function.args
    lines.append("return {" + ", ".join(f"result{i}" for i in range(len(functions))) + "}")
    return "\n".join(lines)


class _Registered:
    """A script run by its SHA1, loaded again where Redis has lost it (a restart, a failover,
    another Cluster node): what redis-py's `Script` does, without its wrappers around
    `EVALSHA`, which cost 7 to 10 us of CPU a call (docs/performance.md)."""

    def __init__(self, client: redis.Redis, text: str) -> None:
        self._client = client
        self._text = text
        # Redis names scripts by SHA1; nothing here relies on it being collision-resistant.
        self._sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        try:
            return await self._evalsha(keys, args)
        except NoScriptError:
            self._sha = await self._client.script_load(self._text)
            return await self._evalsha(keys, args)

    async def _evalsha(self, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        command = self._client.execute_command  # redis-py leaves it untyped
        return await command("EVALSHA", self._sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]


class LuaScript:
    """One function registered as a script of its own; it answers what the function returns."""

    def __init__(self, client: redis.Redis, function: LuaFunction) -> None:
        self._function = function
        self._script = _Registered(client, function.script())

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        step = Step(self._function, keys, args)
        return await self._script(step.keys, step.args)


class ComposedScript:
    """Steps of several modules as one registered script; every key must share a hash slot."""

    def __init__(
        self, client: redis.Redis, functions: Sequence[LuaFunction], *, guarded: bool = False
    ) -> None:
        self._functions = tuple(functions)
        self._script = _Registered(client, compose(self._functions, guarded=guarded))

    async def __call__(self, *steps: Step) -> list[Any]:
        if tuple(step.function for step in steps) != self._functions:
            raise ValueError("the steps are not the functions this script was composed of")
        result = await self._script(
            [key for step in steps for key in step.keys],
            [arg for step in steps for arg in step.args],
        )
        return list(result)
