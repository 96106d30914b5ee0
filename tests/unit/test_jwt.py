"""The `jwt` mode against the usual attacks, with a JWKS endpoint that counts its fetches."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from broker.errors import IdentityUnavailable, Unauthorized
from broker.identity.credentials import Subject
from broker.identity.oidc import JwksCache, JwtVerifier
from broker.settings import Settings

ISSUER = "https://id.example.com/"
AUDIENCE = "gladia-broker"
JWKS_URL = "https://id.example.com/.well-known/jwks.json"
SETTINGS = Settings(
    auth_modes=("jwt",),
    jwt_issuer=ISSUER,
    jwt_audience=AUDIENCE,
    jwt_jwks_url=JWKS_URL,
    jwt_algorithms=("RS256", "ES256"),
)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


@dataclass
class Provider:
    """A JWKS endpoint whose keys can change, counting how often it is fetched."""

    keys: list[dict[str, Any]] = field(default_factory=lambda: [public_jwk(RSA_KEY, "k1")])
    fetches: int = 0
    status: int = 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        assert "x-gladia-key" not in request.headers
        self.fetches += 1
        return httpx.Response(self.status, json={"keys": self.keys})


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
async def verifier(provider: Provider) -> AsyncIterator[JwtVerifier]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        jwks = JwksCache(http, JWKS_URL, cache_s=300, total_timeout_s=2)
        yield JwtVerifier(jwks, SETTINGS)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "user-42", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def signed(payload: dict[str, Any], key: Any = RSA_KEY, kid: str | None = "k1", **kw: Any) -> str:
    algorithm = kw.pop("algorithm", "RS256")
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=algorithm, headers={**headers, **kw})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def refused(verifier: JwtVerifier, token: str) -> None:
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


async def test_a_valid_token_gives_its_subject(verifier: JwtVerifier, provider: Provider) -> None:
    assert await verifier.verify(signed(claims())) == Subject("user-42")
    assert await verifier.verify(signed(claims(sub="user-43"))) == Subject("user-43")
    assert provider.fetches == 1  # cached


async def test_an_ec_key_from_the_allow_list_verifies(provider: Provider) -> None:
    provider.keys = [public_jwk(EC_KEY, "e1")]
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        verifier = JwtVerifier(JwksCache(http, JWKS_URL, 300, 2), SETTINGS)
        token = signed(claims(), EC_KEY, "e1", algorithm="ES256")
        assert await verifier.verify(token) == Subject("user-42")


async def test_alg_none_is_refused_without_fetching_keys(
    verifier: JwtVerifier, provider: Provider
) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    token = f"{header}.{b64(json.dumps(claims()).encode())}."
    await refused(verifier, token)
    assert provider.fetches == 0


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    verifier: JwtVerifier, provider: Provider
) -> None:
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    await refused(verifier, f"{header}.{payload}.{b64(signature)}")
    assert provider.fetches == 0


@pytest.mark.parametrize(
    "payload",
    [
        claims(aud="another-service"),
        claims(iss="https://evil.example.com/"),
        claims(exp=int(time.time()) - 120),
        claims(exp=None),
        claims(aud=None),
        claims(iss=None),
        claims(sub=None),
        claims(sub=""),
        claims(sub=42),
        claims(nbf=int(time.time()) + 600),
    ],
    ids=[
        "wrong-aud",
        "wrong-iss",
        "expired",
        "no-exp",
        "no-aud",
        "no-iss",
        "no-subject",
        "empty-subject",
        "numeric-subject",
        "not-yet-valid",
    ],
)
async def test_tokens_with_bad_claims_are_refused(
    verifier: JwtVerifier, payload: dict[str, Any]
) -> None:
    await refused(verifier, signed(payload))


async def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(
    verifier: JwtVerifier,
) -> None:
    await refused(verifier, signed(claims(), OTHER_RSA_KEY, "k1"))


async def test_an_algorithm_outside_the_list_is_refused(verifier: JwtVerifier) -> None:
    await refused(verifier, signed(claims(), algorithm="RS512"))


async def test_an_unknown_kid_is_refused_after_at_most_one_refetch(
    verifier: JwtVerifier, provider: Provider
) -> None:
    assert await verifier.verify(signed(claims())) == Subject("user-42")
    assert provider.fetches == 1
    for _ in range(5):
        await refused(verifier, signed(claims(), OTHER_RSA_KEY, "unknown"))
    # Just fetched: a stream of unknown kids does not turn into a stream of fetches.
    assert provider.fetches == 1


async def test_a_rotated_key_is_found_with_one_refetch(provider: Provider) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        jwks = JwksCache(http, JWKS_URL, 300, 2, refetch_min_interval_s=0)
        verifier = JwtVerifier(jwks, SETTINGS)
        assert await verifier.verify(signed(claims())) == Subject("user-42")
        provider.keys = [*provider.keys, public_jwk(OTHER_RSA_KEY, "k2")]
        assert await verifier.verify(signed(claims(), OTHER_RSA_KEY, "k2")) == Subject("user-42")
        assert provider.fetches == 2
        await refused(verifier, signed(claims(), OTHER_RSA_KEY, "k3"))
        assert provider.fetches == 3  # one refetch for that token, not more


async def test_a_token_cannot_point_at_its_own_keys(
    verifier: JwtVerifier, provider: Provider
) -> None:
    token = signed(claims(), OTHER_RSA_KEY, "k1", jku="https://evil.example.com/jwks.json")
    await refused(verifier, token)
    assert provider.fetches == 1


async def test_without_a_kid_the_only_key_is_used(verifier: JwtVerifier) -> None:
    assert await verifier.verify(signed(claims(), kid=None)) == Subject("user-42")


async def test_a_key_declaring_another_algorithm_is_not_used(provider: Provider) -> None:
    provider.keys = [{**public_jwk(RSA_KEY, "k1"), "alg": "RS512"}]
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        verifier = JwtVerifier(JwksCache(http, JWKS_URL, 300, 2), SETTINGS)
        await refused(verifier, signed(claims()))


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "x" * 20_000, "é.é.é"])
async def test_garbage_is_refused(verifier: JwtVerifier, token: str) -> None:
    await refused(verifier, token)


async def test_an_unreachable_provider_is_a_503_not_a_401(provider: Provider) -> None:
    provider.status = 500
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        verifier = JwtVerifier(JwksCache(http, JWKS_URL, 300, 2), SETTINGS)
        with pytest.raises(IdentityUnavailable):
            await verifier.verify(signed(claims()))
        with pytest.raises(IdentityUnavailable):
            await verifier.verify(signed(claims()))
        assert provider.fetches == 1  # not once per request while it is down


async def test_known_keys_keep_working_while_the_provider_is_down(provider: Provider) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        jwks = JwksCache(http, JWKS_URL, cache_s=0, total_timeout_s=2, refetch_min_interval_s=0)
        verifier = JwtVerifier(jwks, SETTINGS)
        assert await verifier.verify(signed(claims())) == Subject("user-42")
        provider.status = 503
        assert await verifier.verify(signed(claims())) == Subject("user-42")
