"""An operation of the document, and the answers and parameters operations share."""

from __future__ import annotations

from broker.web.openapi.errors import error_ref
from broker.web.openapi.schema import JSON, JsonObject, schema_ref
from broker.web.openapi.security import Security


def operation(
    operation_id: str,
    summary: str,
    security: Security,
    answers: dict[int, JsonObject],
    errors: tuple[int, ...],
    *,
    body: tuple[str, bool] | None = None,
    parameters: list[JsonObject] | None = None,
    envelope: bool = False,
) -> JsonObject:
    """An operation answering `answers` or `errors` (and 405); `body` is (schema, required)."""
    responses: JsonObject = {str(status): answer for status, answer in answers.items()}
    # The /v2/ facade answers errors in Gladia's envelope; everything else in problem+json.
    for status in (*errors, 405):
        responses[str(status)] = error_ref(status, envelope=envelope)
    described: JsonObject = {
        "operationId": operation_id,
        "summary": summary,
        "security": security,
        "responses": responses,
    }
    if parameters:
        described["parameters"] = parameters
    if body is not None:
        schema_name, required = body
        described["requestBody"] = {
            "required": required,
            "content": {JSON: {"schema": schema_ref(schema_name)}},
        }
    return described


def json_answer(schema_name: str, *, no_store: bool = False) -> JsonObject:
    """A 2xx answer with a JSON body of the named schema."""
    answer: JsonObject = {
        "description": "OK",
        "content": {JSON: {"schema": schema_ref(schema_name)}},
    }
    if no_store:
        answer["headers"] = {
            "Cache-Control": {"schema": {"type": "string", "const": "no-store"}, "required": True}
        }
    return answer


def text_answer(description: str, media_type: str) -> JsonObject:
    """A 2xx answer whose body is not JSON (audio, metrics)."""
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def session_id_parameter() -> JsonObject:
    """The `{session_id}` of /v1/sessions/… and /v2/live/…."""
    return {
        "name": "session_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    }


def integer_query(name: str, minimum: int, maximum: int) -> JsonObject:
    """An optional integer query parameter within bounds."""
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum},
    }


def pattern_query(name: str, pattern: str) -> JsonObject:
    """An optional string query parameter matching `pattern`."""
    return {"name": name, "in": "query", "schema": {"type": "string", "pattern": pattern}}
