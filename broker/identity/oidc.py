"""`jwt` identity mode: tokens from the app's OIDC provider, checked against its published keys.

The JWKS comes from one configured URL (never from the token's `jku`/`x5u`/`jwk` headers), is
cached for `BROKER_JWT_JWKS_CACHE_TTL_S`, and is fetched again at most once for a token whose
`kid` is unknown (and then not again for `REFETCH_MIN_INTERVAL_S`), so a stream of forged tokens
cannot turn the broker into a load generator against the provider. Algorithms come from the
allow-list only (asymmetric, never `none`, never HMAC); `exp`, `iss` and `aud` are required.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt

from broker.errors import IdentityUnavailable, InvalidFields, SettingsError, Unauthorized
from broker.identity.credentials import Subject, validate_subject
from broker.identity.grants import Grant
from broker.settings import Settings

logger = logging.getLogger("broker.identity")

REFETCH_MIN_INTERVAL_S = 10.0
MAX_JWKS_BYTES = 256 * 1024
MAX_TOKEN_LENGTH = 16 * 1024
MAX_JTI_LENGTH = 256  # a longer `jti` is not kept: no revocation field is named after it


def jwks_tls_context(settings: Settings) -> ssl.SSLContext:
    """The CAs the JWKS client trusts: the public ones, BROKER_JWT_CA_FILE's; or SettingsError."""
    # httpx's default (certifi's bundle) without the environment's SSL_CERT_FILE: the CA file
    # adds to the public CAs, so a provider that moves to a public certificate keeps working.
    tls_context = httpx.create_ssl_context(trust_env=False)
    if settings.jwt_ca_file:
        try:
            tls_context.load_verify_locations(cafile=settings.jwt_ca_file)
        except OSError as exc:  # ssl.SSLError is one: not PEM, or no certificate in it
            detail = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
            raise SettingsError(
                "BROKER_JWT_CA_FILE cannot be used as a PEM file of CA certificates "
                f"({detail or type(exc).__name__})"
            ) from None
    return tls_context


def open_jwks_client(settings: Settings, tls_context: ssl.SSLContext) -> httpx.AsyncClient:
    """A client for the identity provider alone: its timeouts and CAs, no Gladia key, no proxies."""
    timeout = httpx.Timeout(settings.jwt_jwks_timeout_s)
    return httpx.AsyncClient(
        timeout=timeout, verify=tls_context, trust_env=False, follow_redirects=False
    )


class JwksCache:
    """The provider's signing keys by `kid`, fetched lazily and shared by every request."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        cache_s: float,
        total_timeout_s: float,
        refetch_min_interval_s: float = REFETCH_MIN_INTERVAL_S,
    ) -> None:
        self._http = http
        self._url = url
        self._cache_s = cache_s
        self._total_timeout_s = total_timeout_s
        self._refetch_min_interval_s = refetch_min_interval_s
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._attempted_at = -float("inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def signing_key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key for `kid` usable with `algorithm`, or Unauthorized."""
        if self._fetched_at is None or time.monotonic() - self._fetched_at > self._cache_s:
            await self._refresh(self._fetched_at)
        jwk = self._find(kid)
        if jwk is None:
            # Perhaps the provider rotated its keys since the last fetch: look once more.
            await self._refresh(self._fetched_at)
            jwk = self._find(kid)
        if jwk is None:
            raise Unauthorized()
        declared = jwk.get("alg")
        if declared is not None and declared != algorithm:
            raise Unauthorized()
        try:
            return jwt.PyJWK(jwk, algorithm=algorithm)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Unauthorized() from None

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self, seen_fetched_at: float | None) -> None:
        async with self._lock:
            if self._fetched_at != seen_fetched_at:
                return  # another request fetched while this one waited
            now = time.monotonic()
            # At most one fetch per interval, whatever the reason: a stream of unknown `kid`s
            # or a provider that is down must not become a stream of requests to it.
            if now - self._attempted_at >= self._refetch_min_interval_s:
                self._attempted_at = now
                try:
                    self._keys = await self._fetch()
                    self._fetched_at = time.monotonic()
                except (httpx.HTTPError, TimeoutError, ValueError) as exc:
                    logger.warning("JWKS fetch failed: %s", type(exc).__name__)
            if not self._keys:
                raise IdentityUnavailable(
                    "The identity provider's keys are unavailable", retry_after_s=5
                )

    async def _fetch(self) -> dict[str | None, dict[str, Any]]:
        self.fetches += 1
        async with asyncio.timeout(self._total_timeout_s):
            async with self._http.stream("GET", self._url) as response:
                if response.status_code != 200:
                    raise ValueError(f"JWKS answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES:
                        raise ValueError("JWKS too large")
        try:
            document = json.loads(body)
        except RecursionError:  # nested past the parser's depth: no JWKS of any provider
            raise ValueError("JWKS nested too deep") from None
        listed = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(listed, list):
            raise ValueError("JWKS has no keys")
        keys: dict[str | None, dict[str, Any]] = {}
        for jwk in listed:
            if isinstance(jwk, dict) and jwk.get("use", "sig") == "sig":
                kid = jwk.get("kid")
                keys[kid if isinstance(kid, str) else None] = jwk
        return keys


class JwtVerifier:
    """Verifies the provider's tokens and reads the subject from the configured claim."""

    def __init__(self, jwks: JwksCache, settings: Settings) -> None:
        self._jwks = jwks
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._algorithms = settings.jwt_algorithms
        self._subject_claim = settings.jwt_subject_claim
        self._leeway_s = settings.jwt_leeway_s

    async def verify(self, token: str) -> Subject:
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized() from None
        algorithm = header.get("alg")
        # Before any key lookup: `none`, HMAC and anything else off the list end here.
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise Unauthorized()
        kid = header.get("kid")
        key = await self._jwks.signing_key(kid if isinstance(kid, str) else None, algorithm)
        try:
            claims: Mapping[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise Unauthorized() from None
        try:
            subject_id = validate_subject(claims.get(self._subject_claim))
        except InvalidFields:
            raise Unauthorized() from None
        return Subject(id=subject_id, grant=jwt_grant(claims))


def jwt_grant(claims: Mapping[str, Any]) -> Grant:
    """A JWT's `iat` and `jti`, for revocation; JWTs bind nothing (their provider decides)."""
    issued_at, token_id = claims.get("iat"), claims.get("jti")
    if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
        issued_at = None  # no issue time: a subject's not-before cannot refuse it
    elif not math.isfinite(issued_at):
        raise Unauthorized()
    if not isinstance(token_id, str) or not 1 <= len(token_id) <= MAX_JTI_LENGTH:
        token_id = None
    return Grant(token_id=token_id, issued_at=None if issued_at is None else float(issued_at))
