"""Credentials to a `Subject`: nothing else in the broker knows how a caller is identified."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.datastructures import Headers, Secret
from starlette.requests import Request
from starlette.types import Scope

from broker.errors import FieldProblem, InvalidFields, Unauthorized
from broker.identity.grants import (
    NO_BINDINGS,
    NO_GRANT,
    SUBJECT_KEY_LENGTH,
    TOKEN_ID_LENGTH,
    BindingRules,
    Bindings,
    Grant,
    TokenIds,
    read_bindings,
)
from broker.observability.logs import note_subject

logger = logging.getLogger("broker.identity")

USER_TOKEN_SALT = "broker.user-token.v1"  # noqa: S105 (a salt, not a secret)
MAX_SUBJECT_LENGTH = 256
# No control characters, and something besides spaces; the OpenAPI document uses the same pattern.
SUBJECT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_SUBJECT = re.compile(SUBJECT_PATTERN)
# Tokens already verified, kept until they expire: a client sends the same token on every call,
# and two HMACs plus decoding cost more than the rest of a lookup (docs/performance.md).
VERIFIED_TOKENS_CACHED = 4096
# Where the proxy-headers middleware keeps the TCP peer before it rewrites the client address.
PEER_STATE_KEY = "broker.peer"


@dataclass(frozen=True)
class Subject:
    """The end user a request acts for, and the credential it came with."""

    id: str
    grant: Grant = field(default=NO_GRANT, compare=False)

    @cached_property
    def key(self) -> str:
        """A stable, non-reversible handle for Redis keys and logs."""
        return subject_key(self.id)


def subject_key(subject_id: str) -> str:
    """The `Subject.key` of the subject `subject_id`."""
    return hashlib.sha256(subject_id.encode()).hexdigest()[:SUBJECT_KEY_LENGTH]


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_at: datetime
    token_id: str = ""
    bindings: Bindings = NO_BINDINGS


def bearer_credential(headers: Headers) -> str | None:
    """The credential of an `Authorization: Bearer …` header, if there is one; two are a 401."""
    values = headers.getlist("authorization")
    if len(values) > 1:
        # Deciding by the first copy would let a second credential reach whatever reads another.
        raise Unauthorized(f"Send one Authorization header, not {len(values)}")
    scheme, _, credential = (values[0] if values else "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def _refuse(field: str, message: str) -> InvalidFields:
    return InvalidFields(f"{field} {message}", problems=(FieldProblem(field, message),))


def validate_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject:
        raise _refuse("sub", "must be a non-empty string")
    if (
        len(subject) > MAX_SUBJECT_LENGTH
        or not _SUBJECT.fullmatch(subject)
        or any(unicodedata.category(char) == "Cs" for char in subject)
    ):
        raise _refuse(
            "sub",
            f"must be at most {MAX_SUBJECT_LENGTH} characters, without control characters",
        )
    return subject


class TokenService:
    """Mints and verifies the broker's own user tokens (itsdangerous, timed, purpose-salted).

    A token's payload: `sub`, `exp` (Unix s), `iat` (Unix s, to the microsecond: revocation
    compares it with a not-before that may be set a moment earlier), `jti` (the token id without
    its subject handle, which `sub` gives), and the bindings' short claims.
    """

    def __init__(
        self,
        secret_keys: tuple[Secret, ...],
        default_ttl_s: int,
        max_ttl_s: int,
        binding_rules: BindingRules | None = None,
    ) -> None:
        # Settings list the signing key first; itsdangerous signs with the last of its list.
        keys = [str(key) for key in reversed(secret_keys)]
        self._serializer = URLSafeTimedSerializer(keys, salt=USER_TOKEN_SALT)
        self._ids = TokenIds(secret_keys)
        self._default_ttl_s = default_ttl_s
        self._max_ttl_s = max_ttl_s
        self._binding_rules = binding_rules or BindingRules()
        # token -> (subject, the time it stops being valid); oldest entries leave first. It lives
        # and dies with this key list (keys change only by building a new service, on restart),
        # so a removed key opens nothing: never share it between services (test_tokens.py).
        # Revocation is checked after it, on every request (Authenticator).
        self._verified: dict[str, tuple[Subject, float]] = {}

    def mint(
        self, subject: object, ttl_s: object = None, bindings: Bindings = NO_BINDINGS
    ) -> MintedToken:
        """A token for `subject`, valid `ttl_s` seconds (the configured default when None)."""
        ttl = self._ttl(ttl_s)
        return self._signed(validate_subject(subject), ttl, bindings)

    def mint_request(self, body: Mapping[str, object]) -> MintedToken:
        """The token a mint request (`sub`, `ttl`, bindings) asks for; InvalidFields names each
        field that is wrong."""
        problems: list[FieldProblem] = []
        subject, ttl = "", 0
        try:
            subject = validate_subject(body.get("sub"))
        except InvalidFields as refused:
            problems.extend(refused.problems)
        try:
            ttl = self._ttl(body.get("ttl"))
        except InvalidFields as refused:
            problems.extend(refused.problems)
        bindings, binding_problems = read_bindings(body, self._binding_rules)
        problems.extend(binding_problems)
        if problems:
            detail = "; ".join(f"{problem.field} {problem.message}" for problem in problems)
            raise InvalidFields(detail, problems=tuple(problems))
        return self._signed(subject, ttl, bindings)

    def _ttl(self, ttl_s: object) -> int:
        ttl_s = self._default_ttl_s if ttl_s is None else ttl_s
        if isinstance(ttl_s, float) and ttl_s.is_integer():
            ttl_s = int(ttl_s)  # JSON has one number type: 600.0 is 600
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int):
            raise _refuse("ttl", "must be a whole number of seconds")
        if not 1 <= ttl_s <= self._max_ttl_s:
            raise _refuse("ttl", f"must be between 1 and {self._max_ttl_s} seconds")
        return ttl_s

    def _signed(self, subject: str, ttl_s: int, bindings: Bindings) -> MintedToken:
        now = time.time()
        expires = int(now) + ttl_s
        token_id = self._ids.new(subject_key(subject))
        payload: dict[str, Any] = {
            "sub": subject,
            "exp": expires,
            "iat": round(now, 6),
            "jti": token_id[SUBJECT_KEY_LENGTH:],
            **bindings.to_claims(),
        }
        return MintedToken(
            token=self._serializer.dumps(payload),
            expires_at=datetime.fromtimestamp(expires, UTC),
            token_id=token_id,
            bindings=bindings,
        )

    def verify(self, token: str) -> Subject:
        """The subject of a valid token, with its grant; Unauthorized otherwise (not revocation:
        the Authenticator checks that on every request)."""
        cached = self._verified.get(token)
        if cached is not None:
            subject, valid_until = cached
            if time.time() < valid_until:
                return subject
            del self._verified[token]
            raise Unauthorized()
        try:
            payload, signed_at = self._serializer.loads(
                token, max_age=self._max_ttl_s, return_timestamp=True
            )
        except BadData:
            raise Unauthorized() from None
        if not isinstance(payload, dict):
            raise Unauthorized()
        subject_id, expires = payload.get("sub"), payload.get("exp")
        if not isinstance(subject_id, str) or not subject_id or not isinstance(expires, int):
            raise Unauthorized()
        valid_until = min(expires, signed_at.timestamp() + self._max_ttl_s)
        if valid_until <= time.time():
            raise Unauthorized()
        subject = Subject(id=subject_id, grant=_grant(payload, subject_id, signed_at))
        if len(self._verified) >= VERIFIED_TOKENS_CACHED:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (subject, valid_until)
        return subject


_JTI = re.compile(rf"^[0-9a-f]{{{TOKEN_ID_LENGTH - SUBJECT_KEY_LENGTH}}}$")


def _grant(payload: dict[str, Any], subject_id: str, signed_at: datetime) -> Grant:
    """The grant of a verified payload; tokens minted before ids and bindings existed have only
    their signing time (whole seconds) as issue time."""
    issued_at, jti = payload.get("iat", signed_at.timestamp()), payload.get("jti")
    if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
        raise Unauthorized()
    if not math.isfinite(issued_at) or (
        jti is not None and not (isinstance(jti, str) and _JTI.fullmatch(jti))
    ):
        raise Unauthorized()
    try:
        bindings = Bindings.from_claims(payload)
    except ValueError:
        raise Unauthorized() from None
    token_id = subject_key(subject_id) + jti if isinstance(jti, str) else None
    return Grant(token_id=token_id, issued_at=float(issued_at), bindings=bindings)


class ServiceKeys:
    """The keys an app's own backend proves itself with to mint tokens."""

    def __init__(self, keys: tuple[Secret, ...]) -> None:
        self._keys = [str(key).encode() for key in keys if str(key)]

    def check(self, headers: Headers) -> None:
        credential = bearer_credential(headers)
        if credential is None or not self._keys:
            raise Unauthorized()
        offered = credential.encode()
        # Compare against every key so timing says nothing about which one matched.
        matches = [hmac.compare_digest(offered, key) for key in self._keys]
        if not any(matches):
            raise Unauthorized()


class BearerVerifier(Protocol):
    """A mode that turns a bearer credential into a Subject (the `jwt` mode is one)."""

    async def verify(self, token: str) -> Subject: ...


class RevocationCheck(Protocol):
    """Refuses a subject whose credential was revoked (broker.identity.revocation)."""

    async def check(self, subject: Subject) -> None: ...


class TrustedProxies:
    """Addresses (IPs or CIDR networks) whose requests come through the gateway."""

    def __init__(self, entries: Iterable[str]) -> None:
        listed = list(entries)
        self.any = "*" in listed
        self._networks = [
            ipaddress.ip_network(item, strict=False) for item in listed if item != "*"
        ]

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str) or not address:
            return False
        if self.any:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._networks)


class GatewayIdentity:
    """`gateway` mode: a header the gateway sets, believed only when the gateway sent it."""

    def __init__(self, header: str, trusted: TrustedProxies) -> None:
        self._header = header.lower()
        self._trusted = trusted

    def subject(self, headers: Headers, peer: str | None) -> Subject | None:
        values = headers.getlist(self._header)
        if not values:
            return None
        if peer not in self._trusted:
            # A client forging the gateway's header: ignore it, and say so (ASVS 16.3).
            logger.warning("identity header from an untrusted address ignored")
            return None
        if len(values) != 1:
            # The gateway overwrites this header; two copies mean a client's one got through.
            raise Unauthorized()
        try:
            return Subject(id=validate_subject(values[0].strip()))
        except InvalidFields:
            raise Unauthorized() from None


def peer_address(scope: Scope) -> str | None:
    """The TCP peer of a request, as it was before any X-Forwarded-For rewriting."""
    peer = scope.get("state", {}).get(PEER_STATE_KEY)
    if isinstance(peer, str):
        return peer
    client = scope.get("client")
    return str(client[0]) if client else None


class Authenticator:
    """Resolves a request's credentials to a Subject through the configured modes, or 401.

    With `revocations` (the app always gives it), every request's credential is checked against
    the revocations in Redis, whichever mode it came through.
    """

    def __init__(
        self,
        tokens: TokenService,
        *,
        modes: tuple[str, ...] = ("token",),
        jwt: BearerVerifier | None = None,
        gateway: GatewayIdentity | None = None,
        revocations: RevocationCheck | None = None,
    ) -> None:
        self._revocations = revocations
        self._tokens = tokens if "token" in modes else None
        self._jwt = jwt if "jwt" in modes else None
        self._gateway = gateway if "gateway" in modes else None
        if ("jwt" in modes and jwt is None) or ("gateway" in modes and gateway is None):
            raise ValueError("every configured identity mode needs its verifier")

    async def authenticate(
        self, headers: Headers, peer: str | None = None, *, check_revocation: bool = True
    ) -> Subject:
        """The subject of a request's credentials; `peer` is the TCP peer (for `gateway`).

        `check_revocation=False` leaves the revocation check to the caller, which must make it
        (`SessionLifecycle.reconnect` reads it with the record).
        """
        subject = await self._resolve(headers, peer)
        note_subject(subject.key)  # the access line names the subject by its hash
        if self._revocations is not None and check_revocation:
            # After the verified-token cache, on every request: a revocation counts at once.
            await self._revocations.check(subject)
        return subject

    async def _resolve(self, headers: Headers, peer: str | None) -> Subject:
        if self._gateway is not None:
            subject = self._gateway.subject(headers, peer)
            if subject is not None:
                return subject
        credential = bearer_credential(headers)
        if credential is None:
            raise Unauthorized()
        if self._tokens is not None:
            try:
                return self._tokens.verify(credential)
            except Unauthorized:
                if self._jwt is None:
                    raise
        if self._jwt is not None:
            return await self._jwt.verify(credential)
        raise Unauthorized()

    async def authenticate_request(
        self, request: Request, *, check_revocation: bool = True
    ) -> Subject:
        return await self.authenticate(
            request.headers, peer_address(request.scope), check_revocation=check_revocation
        )
