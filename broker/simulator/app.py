"""create_simulator_app: the Starlette app of one simulated Gladia account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute

from broker.simulator.config import SimulatorConfig
from broker.simulator.controls import Controls
from broker.simulator.errors import GladiaError, error_response, handle_gladia_error
from broker.simulator.middleware import CallsAndFaults
from broker.simulator.rest import RestApi
from broker.simulator.state import SimulatorState
from broker.simulator.websocket import LiveSocketEndpoint


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(
        request.url.path, GladiaError(exc.status_code, headers=dict(exc.headers or {}))
    )


def create_simulator_app(config: SimulatorConfig) -> Starlette:
    """Build a simulator; its state is ``app.state.simulator``."""
    state = SimulatorState(config)
    socket = LiveSocketEndpoint(state)
    routes = [
        *RestApi(state).routes(),
        WebSocketRoute("/v2/live", socket.serve),
        *Controls(state).routes(),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with state.running():
            yield

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(CallsAndFaults, config=config, calls=state.call_log, faults=state.faults)
        ],
        exception_handlers={
            GladiaError: handle_gladia_error,
            HTTPException: _handle_http_exception,
        },
        lifespan=lifespan,
    )
    app.state.simulator = state
    return app
