"""The media types, and builders for the JSON Schema objects, that the surfaces share."""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]

JSON = "application/json"
PROBLEM = "application/problem+json"


def schema_ref(name: str) -> JsonObject:
    """A reference to the named schema of the document's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def closed(properties: JsonObject, required: tuple[str, ...] = ()) -> JsonObject:
    """An object schema that refuses properties it does not name."""
    schema: JsonObject = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def timestamp() -> JsonObject:
    """A timestamp as the broker writes it."""
    return {"type": "string", "minLength": 1}
