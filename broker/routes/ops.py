"""Health and readiness, for the gateway and the orchestrator."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.services import services

READINESS_TIMEOUT_S = 1.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when Redis answers; no upstream call, so probes cost Gladia nothing."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await services(request).store.ping()
    except (TimeoutError, RedisError, OSError):
        return JSONResponse({"status": "unavailable", "redis": "down"}, status_code=503)
    return JSONResponse({"status": "ready", "redis": "up"})


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
