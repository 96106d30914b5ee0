"""A raw WebSocket client for the live socket (the `websockets` package, no SDK)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

STOP = json.dumps({"type": "stop_recording"})


@dataclass
class Conversation:
    """Messages received on one socket, and how it closed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def of_type(self, message_type: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == message_type]

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]


async def read_until_closed(ws: ClientConnection, conversation: Conversation) -> Conversation:
    """Collect messages until the server closes the socket."""
    try:
        while True:
            conversation.messages.append(json.loads(await ws.recv()))
    except ConnectionClosed:
        conversation.close_code = ws.close_code
    return conversation


async def converse(
    url: str, frames: Sequence[bytes | str], stop: bool = True, timeout_s: float = 10.0
) -> Conversation:
    """Send frames (then stop_recording) and read everything until the server closes."""
    conversation = Conversation()
    async with asyncio.timeout(timeout_s), connect(url, max_queue=None) as ws:
        reader = asyncio.create_task(read_until_closed(ws, conversation))
        for frame in frames:
            await ws.send(frame)
        if stop:
            await ws.send(STOP)
        await reader
    return conversation
