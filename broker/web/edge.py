"""The one layer every request passes through: request id, access line, CORS, attempt guard.

Four middlewares did this before, each with its own send wrapper and its own pass over the
headers; on a reconnect lookup they cost more than the lookup itself (docs/performance.md). Here
there is one pass over the request's headers and one wrapper around `send`, and the CORS answer
headers are built once, as raw pairs, for each configured origin.

Order, as it was: the access line sees every answer (a CORS refusal, a 429 of the guard), and
every answer gets the request id and the CORS headers.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterable
from secrets import token_hex
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.errors import TooManyRequests
from broker.observability.logs import REQUEST_ID_PATTERN, AccessLog, RequestLog, request_context
from broker.policy.limits import Limits
from broker.web.cors import StrictPreflight
from broker.web.problems import error_response

# The client surfaces: every route here authenticates a user or a service. Gladia-facing routes
# are left out on purpose: counting Gladia's own address would let a few stale callbacks block
# every later one.
GUARDED_PREFIXES = ("/v1/sessions", "/v1/tokens", "/v1/subjects", "/v1/usage", "/v2/live")
# Answers counted as misses against the client's address, to slow guessing.
MISS_STATUSES = frozenset({401, 404})
_VARY_ORIGIN = (b"vary", b"Origin")


class _RequestIds:
    """Fresh request ids: 32 hex digits, unique, not secret (a client may send its own). A
    random prefix per process and a counter cost far less than 16 bytes of `os.urandom` each."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = token_hex(8)
        self._counter = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_request_ids = _RequestIds()


class CorsHeaders:
    """The CORS part of an answer, per origin, precomputed; preflights go to Starlette's code.

    Only exact origins are allowed (settings refuse `*` and `null`); an origin not allowed gets
    no `Access-Control-*` header at all, only `Vary: Origin` (as every answer does).
    """

    def __init__(self, origins: Iterable[str], methods: list[str], headers: list[str],
                 expose: list[str], max_age_s: int) -> None:  # fmt: skip
        self.preflight = StrictPreflight(
            _no_app,
            allow_origins=list(origins),
            allow_methods=methods,
            allow_headers=headers,
            expose_headers=expose,
            max_age=max_age_s,
        )
        exposed = ", ".join(expose).encode("latin-1")
        self._allowed: dict[str, tuple[tuple[bytes, bytes], ...]] = {
            origin: (
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", exposed),
                _VARY_ORIGIN,
            )
            for origin in origins
        }

    def for_origin(self, origin: str | None) -> tuple[tuple[bytes, bytes], ...]:
        if origin is None:
            return (_VARY_ORIGIN,)
        return self._allowed.get(origin, (_VARY_ORIGIN,))


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("CorsHeaders answers preflights only")  # pragma: no cover


class EdgeMiddleware:
    """Request id, access line and request metrics, CORS, and the attempt guard, in one pass."""

    def __init__(self, app: ASGIApp, *, access: AccessLog, cors: CorsHeaders) -> None:
        self.app = app
        self._access = access
        self._cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = origin = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                offered = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight = True
        request_id = (
            offered if offered and REQUEST_ID_PATTERN.match(offered) else _request_ids.new()
        )
        scope.setdefault("state", {})["request_id"] = request_id
        request_log = RequestLog(request_id)
        answer_headers = (*self._cors.for_origin(origin), (b"x-request-id", request_id.encode()))
        with request_context(request_log):
            await self._answer(
                scope, receive, send, request_log, answer_headers,
                preflight and origin is not None and scope["method"] == "OPTIONS",
            )  # fmt: skip

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_log: RequestLog,
        answer_headers: tuple[tuple[bytes, bytes], ...],
        preflight: bool,
    ) -> None:
        started = time.perf_counter()
        status = 500
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                self._access.write(scope, request_log, status, time.perf_counter() - started)

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[Any] = message.setdefault("headers", [])
                # A preflight's answer carries its own CORS headers.
                headers.extend(answer_headers[-1:] if preflight else answer_headers)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await send(message)  # the whole answer leaves here (server_protocol.py)
                finish()  # timed to the last byte, made after it left (and written after this turn)
                return
            await send(message)

        # The attempt guard: an address with too many recent misses is refused (429), and each
        # 401 and 404 it gets is counted against it.
        client = scope.get("client")
        address = str(client[0]) if client and scope["path"].startswith(GUARDED_PREFIXES) else None
        limits: Limits | None = None
        unchecked = False
        try:
            if preflight:
                response = self._cors.preflight.preflight_response(Headers(scope=scope))
                await response(scope, receive, edge_send)
                return
            if address is not None:
                limits = scope["app"].state.resources.limits
                try:
                    unchecked = await limits.check_address(address)
                except TooManyRequests as refused:
                    path, request_id = scope["path"], request_log.request_id
                    await error_response(refused, path, request_id)(scope, receive, edge_send)
                    return
            await self.app(scope, receive, edge_send)
            if limits is not None and address is not None and status in MISS_STATUSES:
                # A fresh id each time: a client-chosen one (X-Request-ID) would count only once.
                await limits.record_miss(address, uuid.uuid4().hex)
        finally:
            if unchecked:  # after the miss is noted: the next request is looked up
                assert limits is not None and address is not None
                limits.end_unchecked(address)
            finish()
