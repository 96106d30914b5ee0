"""`GET /openapi.json`: this document, describing itself."""

from __future__ import annotations

from broker.web.openapi.operation import json_answer, operation
from broker.web.openapi.schema import JsonObject
from broker.web.openapi.security import PUBLIC


def paths() -> JsonObject:
    """The document's own path."""
    return {
        "/openapi.json": {
            "get": operation(
                "openapi", "This document", PUBLIC, {200: json_answer("OpenApiDocument")}, ()
            )
        },
    }


def schemas() -> JsonObject:
    """The document's own schema, loosely: it is described here, not validated."""
    return {"OpenApiDocument": {"type": "object", "required": ["openapi", "paths"]}}
