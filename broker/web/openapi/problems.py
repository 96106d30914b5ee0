"""`GET /problems` and `GET /problems/{name}`: the problem types and reasons, described."""

from __future__ import annotations

from broker.errors import REASONS
from broker.web.openapi.operation import json_answer, operation
from broker.web.openapi.schema import JsonObject, closed, schema_ref
from broker.web.openapi.security import PUBLIC
from broker.web.problems import problem_catalog


def paths() -> JsonObject:
    return {
        "/problems": {
            "get": operation(
                "problems",
                "Every problem type and every reason a problem answer can carry",
                PUBLIC,
                {200: json_answer("ProblemCatalog")},
                (),
            )
        },
        "/problems/{name}": {
            "get": operation(
                "problem",
                "One problem type: where a problem answer's `type` leads",
                PUBLIC,
                {200: json_answer("ProblemType")},
                (404,),
                parameters=[
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": sorted(problem_catalog())},
                    }
                ],
            )
        },
    }


def schemas() -> JsonObject:
    return {
        "ProblemType": closed(
            {
                "type": {"type": "string", "enum": problem_types()},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "reason": {"type": "string", "description": "the reason it carries by default"},
            },
            ("type", "title", "status", "reason"),
        ),
        "ProblemCatalog": closed(
            {
                "types": {"type": "array", "items": schema_ref("ProblemType")},
                "reasons": closed(
                    {reason: {"type": "string"} for reason in sorted(REASONS)},
                    tuple(sorted(REASONS)),
                ),
            },
            ("types", "reasons"),
        ),
    }


def problem_types() -> list[str]:
    return sorted(entry["type"] for entry in problem_catalog().values())
