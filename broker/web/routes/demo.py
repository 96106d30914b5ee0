"""`/demo`: a static page that streams the microphone through a session the broker creates.

Served by `broker dev` always, by `broker serve` only with `BROKER_DEMO=true`. Gladia's JS SDK
comes from `broker/demo/node_modules` (`make demo-assets`), never from a copy in the repo.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from broker.errors import Forbidden, NotFound
from broker.settings import Settings
from broker.web.http import json_response
from broker.web.resources import resources

# The page is package data of `broker`: wheels and editable installs keep it as files on disk,
# which FileResponse serves.
DEMO_DIR = Path(str(importlib.resources.files("broker") / "demo"))
SDK_PACKAGE = DEMO_DIR / "node_modules" / "@gladiaio" / "sdk"
SDK_BUNDLE = SDK_PACKAGE / "dist" / "index.iife.js"
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "pcm-worklet.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class DemoOptions:
    """What the page may know of how the broker runs; set by `broker dev`, defaults for serve."""

    simulator: bool = False
    # The user whose development token the page may fetch; None outside `broker dev`.
    dev_token_subject: str | None = None


def content_security_policy(settings: Settings) -> str:
    """The page loads only from this origin and talks only to it and to Gladia's sockets."""
    gladia = urlsplit(settings.gladia_origin)
    sockets = f"{'wss' if gladia.scheme == 'https' else 'ws'}://{gladia.netloc}"
    return (
        f"default-src 'self'; connect-src 'self' {sockets} wss://*.gladia.io; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
    )


def demo_routes(options: DemoOptions) -> list[BaseRoute]:
    async def page(request: Request) -> Response:
        return _file(request, DEMO_DIR / "index.html", PAGE_FILES["index.html"])

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PAGE_FILES:
            raise NotFound("No such file")
        return _file(request, DEMO_DIR / name, PAGE_FILES[name])

    async def sdk_bundle(request: Request) -> Response:
        if not SDK_BUNDLE.is_file():
            raise NotFound("Gladia's JS SDK is not installed: run `make demo-assets`")
        return _file(request, SDK_BUNDLE, "text/javascript; charset=utf-8")

    async def config(request: Request) -> Response:
        return json_response(
            {
                "simulator": options.simulator,
                "gladia_origin": resources(request).settings.gladia_origin,
                "dev_token": options.dev_token_subject is not None,
                "sdk_version": sdk_version(),
            },
            no_store=True,
        )

    async def dev_token(request: Request) -> Response:
        """A development token for the page, only to a browser on this machine."""
        if options.dev_token_subject is None or not _from_loopback(request):
            raise Forbidden(
                "Development tokens are handed out by `broker dev` to this machine only"
            )
        minted = resources(request).tokens.mint(options.dev_token_subject)
        expires_at = minted.expires_at.isoformat().replace("+00:00", "Z")
        body = {"token": minted.token, "expires_at": expires_at, "sub": options.dev_token_subject}
        return json_response(body, 201, no_store=True)

    async def to_page(request: Request) -> Response:
        return RedirectResponse("/demo/", status_code=308)

    routes: list[BaseRoute] = [
        Route("/demo", to_page, methods=["GET"]),
        Route("/demo/", page, methods=["GET"]),
        Route("/demo/config.json", config, methods=["GET"]),
        Route("/demo/vendor/gladia-sdk.js", sdk_bundle, methods=["GET"]),
        Route("/demo/{name}", asset, methods=["GET"]),
    ]
    if options.dev_token_subject is not None:
        routes.append(Route("/demo/dev-token", dev_token, methods=["POST"]))
    return routes


def sdk_version() -> str | None:
    """The installed `@gladiaio/sdk` version, or None when `make demo-assets` has not run."""
    try:
        manifest = json.loads((SDK_PACKAGE / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("version") if isinstance(manifest, dict) else None
    return version if isinstance(version, str) and SDK_BUNDLE.is_file() else None


def _file(request: Request, path: Path, media_type: str) -> Response:
    csp = content_security_policy(resources(request).settings)
    return FileResponse(
        path, media_type=media_type, headers={**PAGE_HEADERS, "Content-Security-Policy": csp}
    )


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
