"""Who may call an operation: the two bearer credentials, and none."""

from __future__ import annotations

from broker.web.openapi.schema import JsonObject

Security = list[dict[str, list[str]]]

USER_TOKEN: Security = [{"userToken": []}]
SERVICE_KEY: Security = [{"serviceKey": []}]
# Ops routes, and Gladia's: a callback's credential is its path, a webhook's its signature.
PUBLIC: Security = []


def security_schemes() -> JsonObject:
    """The credentials `USER_TOKEN` and `SERVICE_KEY` name."""
    return {
        "userToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "An end user's token, minted by POST /v1/tokens or the CLI",
        },
        "serviceKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "A key of BROKER_SERVICE_KEYS: the app's own backend",
        },
    }
