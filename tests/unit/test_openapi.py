"""The hand-written OpenAPI document and the app's routes describe the same API."""

from typing import Any

from starlette.routing import Route

from broker.policy.rules import PolicyRules
from broker.settings import Settings
from broker.web.app import create_app
from broker.web.openapi import build_openapi

SETTINGS = Settings()
METHODS = {"get", "post", "put", "patch", "delete"}


def routed_operations() -> set[tuple[str, str]]:
    # The /demo pages (BROKER_DEMO, off here) are a browser page, not API: not documented.
    operations = set()
    for route in create_app(SETTINGS).routes:
        assert isinstance(route, Route), f"an undocumentable route: {route!r}"
        for method in route.methods or ():
            if method != "HEAD":  # Starlette answers HEAD for every GET by itself
                operations.add((route.path, method.lower()))
    return operations


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_documented_and_every_documented_operation_is_routed() -> None:
    document = build_openapi(SETTINGS)
    assert documented_operations(document) == routed_operations()


def test_every_request_body_is_closed_to_unknown_fields() -> None:
    schemas = build_openapi(SETTINGS)["components"]["schemas"]
    for name in ("TokenRequest", "CreateSessionRequest"):
        assert schemas[name]["additionalProperties"] is False, name


def test_every_client_operation_requires_a_credential() -> None:
    document = build_openapi(SETTINGS)
    schemes = set(document["components"]["securitySchemes"])
    # Ops routes, and Gladia's: a callback's credential is its path, a webhook's its signature.
    public = {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/metrics",
        "/problems",
        "/problems/{name}",
        "/v1/callbacks/{capability}",
        "/v1/webhooks/gladia",
    }
    for path, method in documented_operations(document):
        security = document["paths"][path][method]["security"]
        if path in public:
            assert security == [], path
        else:
            assert security and {name for item in security for name in item} <= schemes, path
            assert "401" in document["paths"][path][method]["responses"], path


def test_the_document_follows_the_settings_and_the_policy() -> None:
    rules = PolicyRules(max_channels=2, encodings=("wav/pcm",), sentiment_analysis=True)
    document = build_openapi(Settings(token_max_ttl_s=600, token_ttl_s=60), rules)
    schemas = document["components"]["schemas"]
    create = schemas["CreateSessionRequest"]
    assert create["properties"]["channels"]["maximum"] == 2
    assert create["properties"]["encoding"] == {"enum": ["wav/pcm"]}
    assert "if" not in create  # no 8-bit encoding allowed, no rule about its depth
    realtime = create["properties"]["realtime_processing"]["properties"]
    assert realtime["sentiment_analysis"] == {"type": "boolean"}
    assert realtime["translation"] == {"const": False}
    assert schemas["TokenRequest"]["properties"]["ttl"]["maximum"] == 600
