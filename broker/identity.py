"""Credentials to a `Subject`: nothing else in the broker knows how a caller is identified."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.datastructures import Headers, Secret

from broker.errors import FieldProblem, InvalidFields, Unauthorized
from broker.observability import note_subject

USER_TOKEN_SALT = "broker.user-token.v1"  # noqa: S105 (a salt, not a secret)
MAX_SUBJECT_LENGTH = 256


@dataclass(frozen=True)
class Subject:
    """The end user a request acts for."""

    id: str

    @property
    def key(self) -> str:
        """A stable, non-reversible handle for Redis keys and logs."""
        return hashlib.sha256(self.id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_at: datetime


def bearer_credential(headers: Headers) -> str | None:
    """The credential of an `Authorization: Bearer …` header, if there is one."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def _refuse(field: str, message: str) -> InvalidFields:
    return InvalidFields(f"{field} {message}", problems=(FieldProblem(field, message),))


def validate_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject.strip():
        raise _refuse("sub", "must be a non-empty string")
    if len(subject) > MAX_SUBJECT_LENGTH or not subject.isprintable():
        raise _refuse("sub", f"must be printable and at most {MAX_SUBJECT_LENGTH} characters")
    return subject


class TokenService:
    """Mints and verifies the broker's own user tokens (itsdangerous, timed, purpose-salted)."""

    def __init__(self, secret_keys: tuple[Secret, ...], default_ttl_s: int, max_ttl_s: int) -> None:
        # Settings list the signing key first; itsdangerous signs with the last of its list.
        keys = [str(key) for key in reversed(secret_keys)]
        self._serializer = URLSafeTimedSerializer(keys, salt=USER_TOKEN_SALT)
        self._default_ttl_s = default_ttl_s
        self._max_ttl_s = max_ttl_s

    def mint(self, subject: object, ttl_s: object = None) -> MintedToken:
        """A token for `subject`, valid `ttl_s` seconds (the configured default when None)."""
        ttl_s = self._default_ttl_s if ttl_s is None else ttl_s
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int):
            raise _refuse("ttl", "must be a whole number of seconds")
        if not 1 <= ttl_s <= self._max_ttl_s:
            raise _refuse("ttl", f"must be between 1 and {self._max_ttl_s} seconds")
        expires = int(time.time()) + ttl_s
        token = self._serializer.dumps({"sub": validate_subject(subject), "exp": expires})
        return MintedToken(token=token, expires_at=datetime.fromtimestamp(expires, UTC))

    def verify(self, token: str) -> Subject:
        try:
            payload = self._serializer.loads(token, max_age=self._max_ttl_s)
        except BadData:
            raise Unauthorized() from None
        if not isinstance(payload, dict):
            raise Unauthorized()
        subject, expires = payload.get("sub"), payload.get("exp")
        if not isinstance(subject, str) or not subject or not isinstance(expires, int):
            raise Unauthorized()
        if expires <= time.time():
            raise Unauthorized()
        return Subject(id=subject)


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


class Authenticator:
    """Resolves a request's credentials to a Subject, or refuses it with 401."""

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    def authenticate(self, headers: Headers) -> Subject:
        credential = bearer_credential(headers)
        if credential is None:
            raise Unauthorized()
        subject = self._tokens.verify(credential)
        note_subject(subject.key)
        return subject
