"""`GET /problems` and `GET /problems/{name}`: what a problem answer's `type` and `reason` mean.

A problem's `type` is `/problems/<name>`, so resolving it against the broker's URL lands here.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.errors import NotFound
from broker.web.problems import problem_catalog, reasons


async def list_problems(request: Request) -> Response:
    return JSONResponse({"types": list(problem_catalog().values()), "reasons": reasons()})


async def show_problem(request: Request) -> Response:
    entry = problem_catalog().get(request.path_params["name"])
    if entry is None:
        raise NotFound("No such problem type; GET /problems lists them")
    return JSONResponse(entry)


routes = [
    Route("/problems", list_problems, methods=["GET"]),
    Route("/problems/{name}", show_problem, methods=["GET"]),
]
