"""Health, readiness and metrics, for the gateway, the orchestrator and Prometheus."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.observability.metrics import CONTENT_TYPE
from broker.web.resources import resources

READINESS_TIMEOUT_S = 1.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when Redis answers; no upstream call, so probes cost Gladia nothing."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await resources(request).store.ping()
    except (TimeoutError, RedisError, OSError) as exc:
        request.app.state.metrics.count_redis_error(exc)
        return JSONResponse({"status": "unavailable", "redis": "down"}, status_code=503)
    return JSONResponse({"status": "ready", "redis": "up"})


async def metrics(request: Request) -> Response:
    """Prometheus text format; served on the main port or on BROKER_METRICS_PORT."""
    exposition = await request.app.state.metrics.render()
    return Response(exposition, media_type=CONTENT_TYPE)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]

metrics_routes = [Route("/metrics", metrics, methods=["GET"])]
