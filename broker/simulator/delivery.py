"""Callbacks and signed account webhooks: ordered per session, retried, off the socket's path."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from broker.simulator.config import SimulatorConfig

Kind = Literal["callback", "webhook"]
logger = logging.getLogger("broker.simulator")


def sign_webhook(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """Standard Webhooks (Svix) signature: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    # Same bytes as standardwebhooks.Webhook(secret).sign, without making it a runtime dependency.
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class DeliveryRecord:
    """The outcome of one callback or webhook, after all its attempts."""

    kind: Kind
    session_id: str
    event: str
    url: str
    attempts: int
    delivered: bool
    status_code: int | None


@dataclass(frozen=True)
class _Outgoing:
    kind: Kind
    session_id: str
    event: str
    url: str
    body: str
    # Webhooks are re-signed on each attempt (fresh timestamp) under the same message id.
    headers: Callable[[], dict[str, str]] = field(default=lambda: {})


class _Lane:
    """One ordered queue: the next item waits until the previous one is delivered or given up."""

    def __init__(self, deliver: Callable[[_Outgoing], Any], on_idle: Callable[[], None]) -> None:
        self._items: deque[_Outgoing] = deque()
        self._deliver = deliver
        self._on_idle = on_idle
        self.task: asyncio.Task[None] | None = None

    def push(self, item: _Outgoing) -> None:
        self._items.append(item)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._items:
            await self._deliver(self._items[0])
            self._items.popleft()
        self.task = None
        self._on_idle()


class Deliverer:
    """Sends callbacks and webhooks through one shared HTTP client opened by the app's lifespan."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._client: httpx.AsyncClient | None = None
        self._lanes: dict[tuple[Kind, str], _Lane] = {}
        self._in_flight = asyncio.Semaphore(max(1, config.callback_concurrency))
        # The newest outcomes only, so long runs keep bounded memory.
        self.records: deque[DeliveryRecord] = deque(maxlen=config.max_recorded_calls)

    async def open(self) -> None:
        """Open the shared HTTP client."""
        timeout = httpx.Timeout(self._config.callback_timeout_s)
        self._client = httpx.AsyncClient(
            timeout=timeout, headers={"user-agent": "gladia-simulator"}
        )

    async def close(self) -> None:
        """Stop every pending delivery and close the client."""
        self.cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def cancel_all(self) -> None:
        """Drop every queued delivery (used by reset and shutdown)."""
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()
        self._lanes.clear()

    def callback(self, session_id: str, url: str, message: dict[str, Any]) -> None:
        """Queue an unsigned session callback ``{id, event: "live.<type>", payload: <message>}``."""
        event = f"live.{message['type']}"
        body = json.dumps(
            {"id": session_id, "event": event, "payload": message}, separators=(",", ":")
        )
        self._push(_Outgoing("callback", session_id, event, url, body, _json_headers))

    def webhook(self, session_id: str, message_type: str) -> None:
        """Queue an account webhook ``{event, payload: {id}}`` when the account has an endpoint."""
        url = self._config.webhook_url
        if url is None:
            return
        event = f"live.{message_type}"
        body = json.dumps({"event": event, "payload": {"id": session_id}}, separators=(",", ":"))
        message_id = "msg_" + secrets.token_hex(12)
        self._push(
            _Outgoing(
                "webhook", session_id, event, url, body, lambda: self._signed(message_id, body)
            )
        )

    def _signed(self, message_id: str, body: str) -> dict[str, str]:
        timestamp = int(time.time())
        secret = self._config.webhook_secret
        signature = sign_webhook(secret, message_id, timestamp, body) if secret else None
        headers = _json_headers()
        for prefix in ("webhook", "svix"):
            headers[f"{prefix}-id"] = message_id
            headers[f"{prefix}-timestamp"] = str(timestamp)
            if signature is not None:
                headers[f"{prefix}-signature"] = signature
        return headers

    def _push(self, item: _Outgoing) -> None:
        key = (item.kind, item.session_id)
        lane = self._lanes.get(key)
        if lane is None:
            lane = _Lane(self._deliver, lambda: self._forget_lane(key))
            self._lanes[key] = lane
        lane.push(item)

    def _forget_lane(self, key: tuple[Kind, str]) -> None:
        self._lanes.pop(key, None)

    async def _deliver(self, item: _Outgoing) -> None:
        status_code: int | None = None
        attempts = max(1, self._config.callback_attempts)
        for attempt in range(1, attempts + 1):
            try:
                if self._client is None:
                    logger.warning("simulator delivery without its lifespan: enter state.running()")
                    raise httpx.TransportError("the simulator's lifespan is not running")
                async with self._in_flight:
                    response = await self._client.post(
                        item.url, content=item.body, headers=item.headers()
                    )
                status_code = response.status_code
                if response.is_success:
                    self._record(item, attempt, True, status_code)
                    return
            except httpx.HTTPError:
                status_code = None
            if attempt < attempts:
                await asyncio.sleep(self._config.callback_backoff_s * 2 ** (attempt - 1))
        self._record(item, attempts, False, status_code)

    def _record(
        self, item: _Outgoing, attempts: int, delivered: bool, status_code: int | None
    ) -> None:
        self.records.append(
            DeliveryRecord(
                item.kind, item.session_id, item.event, item.url, attempts, delivered, status_code
            )
        )


def _json_headers() -> dict[str, str]:
    return {"content-type": "application/json"}
