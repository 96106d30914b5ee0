"""What Gladia calls: the per-session callback and the account webhook."""

from __future__ import annotations

from broker.web.openapi.operation import operation
from broker.web.openapi.schema import JsonObject
from broker.web.openapi.security import PUBLIC


def paths() -> JsonObject:
    """The callback and webhook paths; neither takes a bearer credential."""
    return {
        "/v1/callbacks/{capability}": {
            "post": operation(
                "receiveCallback",
                "Gladia's per-session callback; the path's capability is its credential",
                PUBLIC,
                {
                    202: {"description": "Kept until the create it belongs to settles"},
                    204: {"description": "Stored (or a duplicate)"},
                },
                (400, 404, 413, 503),
                parameters=[
                    {
                        "name": "capability",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    }
                ],
                body=("GladiaEvent", False),
            ),
        },
        "/v1/webhooks/gladia": {
            "post": operation(
                "receiveWebhook",
                "Gladia's account webhook, verified with the Standard Webhooks signature",
                PUBLIC,
                {204: {"description": "Stored (or a duplicate)"}},
                (400, 401, 404, 413, 503),
                body=("GladiaEvent", False),
            ),
        },
    }


def schemas() -> JsonObject:
    """The schema of what Gladia sends."""
    return {
        "GladiaEvent": {"type": "object", "description": "What Gladia sends; verified, then kept"},
    }
