"""Test controls under /_simulator/: calls, faults, reset, session inspection, disconnects."""

from __future__ import annotations

import json
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from broker.simulator import views
from broker.simulator.errors import GladiaError
from broker.simulator.faults import Fault
from broker.simulator.middleware import CONTROL_PREFIX
from broker.simulator.rest import require_key
from broker.simulator.state import SimulatorState


class Controls:
    """The HTTP face of SimulatorState's test handles; every route requires the account key."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._api_key = state.config.api_key.encode()

    def routes(self) -> list[BaseRoute]:
        """The control routes."""
        p = CONTROL_PREFIX
        return [
            Route(f"{p}/calls", self.calls, methods=["GET"]),
            Route(f"{p}/reset", self.reset, methods=["POST"]),
            Route(f"{p}/faults", self.add_fault, methods=["POST"]),
            Route(f"{p}/faults", self.faults, methods=["GET"]),
            Route(f"{p}/deliveries", self.deliveries, methods=["GET"]),
            Route(f"{p}/sessions/{{id}}", self.session, methods=["GET"]),
            Route(f"{p}/sessions/{{id}}/disconnect", self.disconnect, methods=["POST"]),
        ]

    async def calls(self, request: Request) -> Response:
        """GET /_simulator/calls: every REST call received, oldest first."""
        require_key(request, self._api_key)
        return JSONResponse({"calls": [call.to_json() for call in self._state.calls]})

    async def reset(self, request: Request) -> Response:
        """POST /_simulator/reset: forget sessions, calls, faults and deliveries."""
        require_key(request, self._api_key)
        self._state.reset()
        return Response(status_code=204)

    async def add_fault(self, request: Request) -> Response:
        """POST /_simulator/faults: arm a fault from its JSON spec."""
        require_key(request, self._api_key)
        try:
            fault = Fault.from_json(json.loads(await request.body() or b"null"))
        except (ValueError, TypeError) as error:
            raise GladiaError(400, "Invalid fault", [str(error)]) from None
        self._state.faults.add(fault)
        return JSONResponse(fault.to_json(), status_code=201)

    async def faults(self, request: Request) -> Response:
        """GET /_simulator/faults: the armed faults and their remaining uses."""
        require_key(request, self._api_key)
        pending = [
            {**fault.to_json(), "remaining": left} for fault, left in self._state.faults.pending()
        ]
        return JSONResponse({"faults": pending})

    async def deliveries(self, request: Request) -> Response:
        """GET /_simulator/deliveries: outcomes of callbacks and webhooks."""
        require_key(request, self._api_key)
        return JSONResponse({"deliveries": [asdict(record) for record in self._state.deliveries]})

    async def session(self, request: Request) -> Response:
        """GET /_simulator/sessions/{id}: bytes received, socket, utterances and messages."""
        require_key(request, self._api_key)
        return JSONResponse(views.inspection_json(self._state.store.get(request.path_params["id"])))

    async def disconnect(self, request: Request) -> Response:
        """POST /_simulator/sessions/{id}/disconnect?code=4500: force-close the live socket."""
        require_key(request, self._api_key)
        session = self._state.store.get(request.path_params["id"])
        try:
            code = int(request.query_params.get("code", "4500"))
        except ValueError:
            raise GladiaError(400, validation_errors=["code must be an integer number"]) from None
        if not (code == 1000 or 3000 <= code <= 4999 or 1001 <= code <= 1014):
            raise GladiaError(400, validation_errors=["code must be a valid WebSocket close code"])
        if not self._state.disconnect(session.id, code):
            raise GladiaError(409, "The session has no live socket")
        return JSONResponse({"id": session.id, "code": code})
