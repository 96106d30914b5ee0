"""JSON from outside the broker, parsed with its nesting bounded.

Gladia's deepest payloads (a final transcript with translations, down to each word) nest about
10 levels; deeper ones are refused at intake (request bodies, callbacks, webhooks), so that
nothing the broker keeps is too deep to render (json recurses once per level).
"""

from __future__ import annotations

import json
from typing import Any

from broker.errors import BadRequest

MAX_JSON_DEPTH = 64
TOO_DEEP = f"The body is nested deeper than {MAX_JSON_DEPTH} levels"


def loads_bounded(text: str) -> Any:
    """`text` parsed, or a 400 when it nests past MAX_JSON_DEPTH; ValueError when not JSON."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadRequest(TOO_DEEP) from None
    if nested_deeper_than(MAX_JSON_DEPTH, value, text):
        raise BadRequest(TOO_DEEP)
    return value


def nested_deeper_than(limit: int, value: object, text: str | None = None) -> bool:
    """Whether JSON `value` nests more than `limit` arrays or objects (`{}` alone is 1 deep).

    `text`, the JSON `value` was parsed from, settles a shallow document at once: it cannot
    nest deeper than it has opening brackets. Level by level, so a deep value cannot recurse.
    """
    if text is not None and text.count("{") + text.count("[") <= limit:
        return False
    level: list[Any] = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        if not level:
            return False
        inner: list[Any] = []
        for node in level:
            items = node.values() if isinstance(node, dict) else node
            inner.extend(item for item in items if isinstance(item, dict | list))
        level = inner
    return bool(level)
