"""The broker's own API, described by hand as OpenAPI 3.1 (Starlette generates none).

One module per surface, as in broker/web/routes/, each with the paths and the schemas it owns;
the shared parts (operations, parameters, security, error responses) have their own modules.
Kept true by tests: every route of the app is in the document and every operation in the
document is a route (tests/unit/test_openapi.py), and schemathesis checks the live broker
against it (tests/broker/test_fuzz_openapi.py). Request bodies are closed
(`additionalProperties: false`), as the policy refuses unknown fields.
"""

from __future__ import annotations

from broker.policy.rules import PolicyRules
from broker.settings import Settings
from broker.web.openapi import (
    api_docs,
    callbacks,
    events,
    facade,
    ops,
    problems,
    sessions,
    tokens,
    usage,
)
from broker.web.openapi.create_request import create_session_request
from broker.web.openapi.errors import error_responses, error_schemas
from broker.web.openapi.schema import JsonObject
from broker.web.openapi.security import security_schemes


def build_openapi(settings: Settings, rules: PolicyRules | None = None) -> JsonObject:
    """The document served at GET /openapi.json, for these settings and policy rules."""
    rules = rules or PolicyRules()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gladia broker",
            "version": "1",
            "description": (
                "Creates Gladia Live v2 sessions for authenticated end users and finds them "
                "again. Errors are RFC 9457 problem details."
            ),
        },
        "paths": {
            **tokens.paths(),
            **usage.paths(),
            **sessions.paths(),
            **events.paths(),
            **callbacks.paths(),
            **facade.paths(rules),
            **ops.paths(),
            **api_docs.paths(),
            **problems.paths(),
        },
        "components": {
            "securitySchemes": security_schemes(),
            "schemas": {
                **error_schemas(),
                **tokens.schemas(settings),
                **usage.schemas(),
                "CreateSessionRequest": create_session_request(rules),
                **sessions.schemas(),
                **events.schemas(),
                **callbacks.schemas(),
                **facade.schemas(),
                **ops.schemas(),
                **api_docs.schemas(),
                **problems.schemas(),
            },
            "responses": error_responses(),
        },
    }
