"""Driving Gladia's official async Python SDK the way an app does."""

from __future__ import annotations

import asyncio
from typing import Any

from gladiaio_sdk import GladiaClient, LiveV2ConnectSessionOptions

CHUNK_BYTES = 3200  # 100 ms of 16 kHz 16-bit mono


async def stream(session: Any, audio: bytes) -> list[Any]:
    """Send audio over an SDK session, stop, and wait for its end; returns its messages.

    SDK 2.2.0 drops a stop_recording asked for before its socket opens, so audio goes once the
    socket is connected.
    """
    messages: list[Any] = []
    connected, ended = asyncio.Event(), asyncio.Event()
    session.on("message", messages.append)
    session.on("connected", lambda _: connected.set())
    session.on("ended", lambda _: ended.set())
    await asyncio.wait_for(connected.wait(), timeout=10)
    for start in range(0, len(audio), CHUNK_BYTES):
        session.send_audio(audio[start : start + CHUNK_BYTES])
    session.stop_recording()
    await asyncio.wait_for(ended.wait(), timeout=30)
    return messages


async def stream_to_created(created: dict[str, Any], audio: bytes) -> list[Any]:
    """Stream to a session the broker created (`connect_session`: no key, no create)."""
    client = GladiaClient(api_key="unused", api_url="http://unused.invalid")
    session = client.live_v2_async().connect_session(
        LiveV2ConnectSessionOptions(id=created["id"], url=created["url"])
    )
    return await stream(session, audio)
