"""Lua scripts written as functions, so that one script can run the steps of several modules.

Each module keeps its own Lua (and its own key names) as a `LuaFunction` of `(keys, argv)`: run
alone, it is an ordinary script; run with others whose keys share one hash slot, the steps run
in one round trip with no other command between them (`ComposedScript`). Like any script, a
step that errors stops the script without undoing the steps before it. A create's writes
after Gladia answers (the record, the subject's lease, the callback binding) are one such
script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

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

    def script(self) -> str:
        """The function as a script of its own."""
        return f"{self.source}\nreturn {self.name}(KEYS, ARGV)\n"


@dataclass(frozen=True)
class Step:
    """One function's part of a composed script: the keys and arguments it is given."""

    function: LuaFunction
    keys: Sequence[str]
    args: Sequence[str | int | float]

    def __post_init__(self) -> None:
        if (len(self.keys), len(self.args)) != (self.function.keys, self.function.args):
            raise ValueError(f"{self.function.name} takes {self.function.keys} keys and "
                             f"{self.function.args} arguments")  # fmt: skip


def compose(functions: Sequence[LuaFunction]) -> str:
    """One script running `functions` in order; it returns the list of their results."""
    lines = [_SLICE]
    for function in dict.fromkeys(functions):  # each definition once, in order
        lines.append(function.source)
    key, arg = 1, 1
    for index, function in enumerate(functions):
        lines.append(
            f"local result{index} = {function.name}("
            f"slice(KEYS, {key}, {function.keys}), slice(ARGV, {arg}, {function.args}))"
        )
        key, arg = key + function.keys, arg + function.args
    lines.append("return {" + ", ".join(f"result{i}" for i in range(len(functions))) + "}")
    return "\n".join(lines)


class ComposedScript:
    """Steps of several modules as one registered script; every key must share a hash slot."""

    def __init__(self, client: redis.Redis, functions: Sequence[LuaFunction]) -> None:
        self._functions = tuple(functions)
        self._script = client.register_script(compose(self._functions))

    async def __call__(self, *steps: Step) -> list[Any]:
        if tuple(step.function for step in steps) != self._functions:
            raise ValueError("the steps are not the functions this script was composed of")
        result = await self._script(
            keys=[key for step in steps for key in step.keys],
            args=[arg for step in steps for arg in step.args],
        )
        return list(result)
