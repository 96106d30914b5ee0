"""`jwt` mode with an identity provider whose certificate a private CA signed (BROKER_JWT_CA_FILE).

The provider serves its JWKS over real TLS on loopback, with a certificate from a throwaway CA.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from broker.errors import SettingsError
from broker.identity.oidc import jwks_tls_context
from broker.settings import Settings
from broker.web.app import create_app
from tests.broker.conftest import BrokerFactory, Simulator
from tests.support.redis_topologies import make_certificates
from tests.support.servers import free_port, serve_in_thread

ISSUER = "https://id.internal.example/"
AUDIENCE = "gladia-broker"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_CA_NAME = "broker-test-ca"  # the CN make_certificates gives its CA


@dataclass
class PrivateCaProvider:
    """An identity provider on https://127.0.0.1, its CA's certificate, and its JWKS fetches."""

    jwks_url: str
    ca_file: Path
    fetches: list[float]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCaProvider]:
    ca_file, cert_file, key_file = make_certificates(tmp_path_factory.mktemp("private-ca"))
    fetches: list[float] = []
    jwk = {**RSAAlgorithm.to_jwk(SIGNING_KEY.public_key(), as_dict=True), "kid": "k1"}

    async def jwks(request: Request) -> JSONResponse:
        fetches.append(time.monotonic())
        return JSONResponse({"keys": [jwk]})

    app = Starlette(routes=[Route("/.well-known/jwks.json", jwks)])
    with serve_in_thread(app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)) as base_url:
        https_url = base_url.replace("http://", "https://", 1)
        yield PrivateCaProvider(f"{https_url}/.well-known/jwks.json", ca_file, fetches)


def jwt_changes(provider: PrivateCaProvider, **more: Any) -> dict[str, Any]:
    provider.fetches.clear()
    return {
        "auth_modes": ("jwt",),
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_jwks_url": provider.jwks_url,
        **more,
    }


def bearer_id_token(subject: str = "idp-user-9") -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    token = jwt.encode(claims, SIGNING_KEY, algorithm="RS256", headers={"kid": "k1"})
    return {"Authorization": f"Bearer {token}"}


async def test_an_id_token_is_accepted_from_a_provider_behind_the_configured_ca(
    broker_factory: BrokerFactory, provider: PrivateCaProvider, simulator: Simulator
) -> None:
    changes = jwt_changes(provider, jwt_ca_file=str(provider.ca_file))
    async with broker_factory(**changes) as broker:
        created = await broker.post("/v1/sessions", headers=bearer_id_token(), json={})
    assert created.status_code == 201, created.text
    assert len(provider.fetches) == 1
    assert len(simulator.calls()) == 1


async def test_without_the_ca_file_the_provider_is_not_trusted_and_no_token_is(
    broker_factory: BrokerFactory, provider: PrivateCaProvider, simulator: Simulator
) -> None:
    async with broker_factory(**jwt_changes(provider)) as broker:
        refused = await broker.post("/v1/sessions", headers=bearer_id_token(), json={})
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "Identity provider unavailable"
    assert "retry-after" in refused.headers
    assert provider.fetches == []  # the TLS handshake failed: no request reached the provider
    assert simulator.calls() == []


def common_names(certificates: list[Any]) -> set[str]:
    return {
        value
        for certificate in certificates
        for attribute in certificate["subject"]
        for name, value in attribute
        if name == "commonName"
    }


def test_the_ca_file_adds_to_the_public_cas_and_does_not_replace_them(
    provider: PrivateCaProvider,
) -> None:
    public = jwks_tls_context(Settings()).get_ca_certs()
    with_private = jwks_tls_context(Settings(jwt_ca_file=str(provider.ca_file))).get_ca_certs()
    assert PRIVATE_CA_NAME not in common_names(public)
    assert common_names(with_private) == common_names(public) | {PRIVATE_CA_NAME}
    assert len(public) > 100  # certifi's bundle


@pytest.fixture(params=["missing", "a-directory", "empty", "not-pem", "corrupt-pem"])
def unusable_ca_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    if request.param == "a-directory":
        path.mkdir()
    elif request.param == "empty":
        path.write_text("")
    elif request.param == "not-pem":
        path.write_text("not a certificate\n")
    elif request.param == "corrupt-pem":
        path.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    return path


def test_an_unusable_ca_file_stops_the_app_before_it_serves(unusable_ca_file: Path) -> None:
    settings = Settings(
        auth_modes=("jwt",),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_jwks_url="https://id.internal.example/jwks.json",
        jwt_ca_file=str(unusable_ca_file),
    )
    with pytest.raises(SettingsError, match=r"^BROKER_JWT_CA_FILE cannot be used as a PEM file"):
        create_app(settings)


def test_serve_refuses_to_start_with_a_missing_ca_file_and_names_it(tmp_path: Path) -> None:
    unconfigured = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GLADIA_", "BROKER_", "REDIS_"))
    }
    environment = {
        **unconfigured,
        "GLADIA_API_KEY": "k",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "BROKER_SECRET_KEYS": "s" * 40,
        "BROKER_PUBLIC_URL": "https://broker.example",
        "BROKER_AUTH_MODES": "jwt",
        "BROKER_JWT_ISSUER": ISSUER,
        "BROKER_JWT_AUDIENCE": AUDIENCE,
        "BROKER_JWT_JWKS_URL": "https://id.internal.example/jwks.json",
        "BROKER_JWT_CA_FILE": str(tmp_path / "no-such-ca.pem"),
    }
    refused = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no .env file
        env=environment,
    )
    assert refused.returncode == 2, refused.stderr
    assert "refusing to start: BROKER_JWT_CA_FILE cannot be used" in refused.stderr
