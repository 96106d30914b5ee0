"""Failed authentications and not-found answers, counted per client address to slow guessing."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.errors import TooManyRequests
from broker.policy.limits import Limits
from broker.web.problems import error_response

# The client surfaces: every route here authenticates a user or a service.
GUARDED_PREFIXES = ("/v1/sessions", "/v1/tokens", "/v2/live")
MISS_STATUSES = frozenset({401, 404})


class AttemptGuardMiddleware:
    """Refuse an address with too many recent misses (429); count each 401 and 404 it gets.

    Gladia-facing routes are left out on purpose: counting Gladia's own address would let a few
    stale callbacks block every later one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if (
            scope["type"] != "http"
            or not client
            or not str(scope["path"]).startswith(GUARDED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        limits: Limits = scope["app"].state.resources.limits
        address = str(client[0])
        try:
            unchecked = await limits.check_address(address)
        except TooManyRequests as refused:
            request_id = str(scope.get("state", {}).get("request_id", "-"))
            await error_response(refused, str(scope["path"]), request_id)(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
            if status in MISS_STATUSES:
                # A fresh id each time: a client-chosen one (X-Request-ID) would count only once.
                await limits.record_miss(address, uuid.uuid4().hex)
        finally:
            if unchecked:  # after the miss is noted: the next request is looked up
                limits.end_unchecked(address)
