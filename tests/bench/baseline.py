"""The lookup baseline: the least a reconnect lookup can cost, a Starlette endpoint doing one
redis-py GET, served by uvicorn with `broker serve`'s options and collector settings and
uvicorn's own HTTP protocol (the broker's, which sends an answer in one write, is the broker's
work: bare Starlette does not have it).

Run as `python -m tests.bench.baseline --port P --redis-url URL`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.cli import freeze_startup_objects

KEY_PREFIX = "bench:baseline:"


def baseline_key(item_id: str) -> str:
    return KEY_PREFIX + item_id


def create_baseline_app(redis_url: str) -> Starlette:
    """GET /lookup/{id}: the stored JSON for the id, or 404; nothing else."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    async def lookup(request: Request) -> Response:
        value = await request.app.state.redis.get(baseline_key(request.path_params["item_id"]))
        if value is None:
            return Response(b'{"title":"Not found"}', status_code=404)
        return Response(value, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(
        routes=[
            Route("/lookup/{item_id}", lookup, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    # Served with `broker serve`'s collector settings and uvicorn options, so that only the
    # application and the HTTP protocol's writes differ.
    app = create_baseline_app(args.redis_url)
    freeze_startup_objects()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
