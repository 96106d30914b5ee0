"""A session URL Gladia returns must point at Gladia: its scheme and host, or another
*.gladia.io host over wss; anything else is an unusable session, never handed to a client."""

from __future__ import annotations

from typing import cast

import aiohttp
import pytest

from broker.errors import UpstreamError
from broker.gladia.client import GladiaClient
from broker.gladia.transport import HttpTransport
from broker.settings import Settings


def client(api_url: str) -> GladiaClient:
    # The check reads settings only; no request is sent.
    return GladiaClient(
        cast(HttpTransport, None),
        cast(aiohttp.ClientSession, None),
        Settings(gladia_api_url=api_url),
    )


@pytest.mark.parametrize(
    ("api_url", "url"),
    [
        ("https://api.gladia.io", "wss://api.gladia.io/v2/live?token=t"),
        ("https://api.gladia.io", "wss://api.GLADIA.io/v2/live?token=t"),
        ("https://api.gladia.io", "wss://eu-west.api.gladia.io/v2/live?token=t"),
        ("https://api.gladia.io", "wss://api.gladia.io:443/v2/live?token=t"),
        ("http://127.0.0.1:8001", "ws://127.0.0.1:8001/v2/live?token=t"),
        ("http://127.0.0.1:8001", "ws://127.0.0.1:9/v2/live?token=t"),  # the host is what counts
    ],
)
def test_a_url_at_gladia_is_accepted(api_url: str, url: str) -> None:
    client(api_url)._check_session_url(url)


@pytest.mark.parametrize(
    ("api_url", "url"),
    [
        ("https://api.gladia.io", "wss://api.gladia.io.evil.example/v2/live"),
        ("https://api.gladia.io", "wss://api.gladia.io@evil.example/v2/live"),
        ("https://api.gladia.io", "ws://api.gladia.io/v2/live"),
        ("https://api.gladia.io", "wss://evil.example/api.gladia.io/"),
        ("https://api.gladia.io", "wss://evil.example#wss://api.gladia.io/"),
        ("http://127.0.0.1:8001", "ws://127.0.0.1:8001@evil.example/v2/live"),
        ("http://127.0.0.1:8001", "ws://127.0.0.2:8001/v2/live"),
    ],
)
def test_a_url_elsewhere_is_an_unusable_session(api_url: str, url: str) -> None:
    with pytest.raises(UpstreamError):
        client(api_url)._check_session_url(url)
