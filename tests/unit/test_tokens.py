import asyncio
import time

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer
from starlette.datastructures import Headers, Secret

from broker.errors import InvalidFields, Unauthorized
from broker.identity.credentials import (
    USER_TOKEN_SALT,
    Authenticator,
    ServiceKeys,
    Subject,
    TokenService,
)
from tests.support.tampering import tampered

KEY = Secret("k" * 40)
OLD_KEY = Secret("o" * 40)


def service(*keys: Secret) -> TokenService:
    return TokenService(keys or (KEY,), default_ttl_s=600, max_ttl_s=3600)


def authenticate(tokens: TokenService, authorization: str | None) -> Subject:
    headers = Headers({"authorization": authorization} if authorization is not None else {})
    return asyncio.run(Authenticator(tokens).authenticate(headers))


def test_a_minted_token_names_its_subject() -> None:
    tokens = service()
    minted = tokens.mint("user-42")
    assert authenticate(tokens, f"Bearer {minted.token}") == Subject("user-42")
    assert abs(minted.expires_at.timestamp() - (time.time() + 600)) < 5


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer x.y.z"],
)
def test_missing_or_malformed_credentials_are_401(authorization: str | None) -> None:
    with pytest.raises(Unauthorized):
        authenticate(service(), authorization)


def test_a_tampered_token_is_401() -> None:
    token = service().mint("user-42").token
    with pytest.raises(Unauthorized):
        authenticate(service(), f"Bearer {tampered(token)}")


def test_an_expired_token_is_401() -> None:
    tokens = service()
    token = tokens.mint("user-42", ttl_s=60).token
    with time_machine.travel(time.time() + 61, tick=False), pytest.raises(Unauthorized):
        authenticate(tokens, f"Bearer {token}")


def test_a_token_signed_for_another_purpose_is_401() -> None:
    other = URLSafeTimedSerializer([str(KEY)], salt="another-purpose")
    token = other.dumps({"sub": "user-42", "exp": int(time.time()) + 60})
    with pytest.raises(Unauthorized):
        authenticate(service(), f"Bearer {token}")


def test_the_first_key_signs_and_every_listed_key_verifies() -> None:
    old_token = service(OLD_KEY).mint("user-42").token
    rotated = service(KEY, OLD_KEY)
    assert authenticate(rotated, f"Bearer {old_token}") == Subject("user-42")
    new_token = rotated.mint("user-42").token
    assert authenticate(service(KEY), f"Bearer {new_token}") == Subject("user-42")


def test_a_token_of_a_retired_key_is_401() -> None:
    old_token = service(OLD_KEY).mint("user-42").token
    with pytest.raises(Unauthorized):
        authenticate(service(KEY), f"Bearer {old_token}")


def test_a_token_verified_and_cached_under_one_key_set_is_401_under_the_next() -> None:
    old_token = service(OLD_KEY).mint("user-42").token
    rotating = service(KEY, OLD_KEY)
    for _ in range(2):  # verified, then answered from the cache
        assert rotating.verify(old_token) == Subject("user-42")
    # Keys are fixed when a TokenService is built (settings are read once): removing one means
    # a new service, whose cache starts empty, in this process as on every restarted instance.
    with pytest.raises(Unauthorized):
        service(KEY).verify(old_token)
    assert rotating.verify(old_token) == Subject("user-42"), "each key set keeps its own cache"


def test_a_well_signed_payload_without_a_subject_is_401() -> None:
    serializer = URLSafeTimedSerializer([str(KEY)], salt=USER_TOKEN_SALT)
    for payload in ({"exp": int(time.time()) + 60}, ["user-42"], {"sub": "u", "exp": "never"}):
        with pytest.raises(Unauthorized):
            authenticate(service(), f"Bearer {serializer.dumps(payload)}")


@pytest.mark.parametrize(
    ("subject", "ttl"), [("", None), ("x" * 300, None), ("u", 0), ("u", 10**9)]
)
def test_minting_refuses_bad_subjects_and_lifetimes(subject: str, ttl: int | None) -> None:
    with pytest.raises(InvalidFields):
        service().mint(subject, ttl)


def test_service_keys_are_checked_exactly() -> None:
    keys = ServiceKeys((Secret("s" * 40),))
    keys.check(Headers({"authorization": "Bearer " + "s" * 40}))
    for wrong in ("Bearer " + "s" * 39, "Bearer " + "t" * 40, "s" * 40, ""):
        with pytest.raises(Unauthorized):
            keys.check(Headers({"authorization": wrong}))
    with pytest.raises(Unauthorized):
        ServiceKeys(()).check(Headers({"authorization": "Bearer anything"}))


def test_a_token_verified_before_still_expires_on_time() -> None:
    tokens = service()
    with time_machine.travel(1_800_000_000, tick=False):
        minted = tokens.mint("user-42", 60)
        assert tokens.verify(minted.token) == Subject("user-42")
    with time_machine.travel(1_800_000_059, tick=False):
        assert tokens.verify(minted.token) == Subject("user-42")
    with time_machine.travel(1_800_000_061, tick=False), pytest.raises(Unauthorized):
        tokens.verify(minted.token)


def test_a_token_verified_before_is_not_valid_past_the_longest_lifetime() -> None:
    tokens = service()
    long_lived = TokenService((KEY,), default_ttl_s=600, max_ttl_s=7200)
    with time_machine.travel(1_800_000_000, tick=False):
        minted = long_lived.mint("user-42", 7000)
        assert tokens.verify(minted.token) == Subject("user-42")
    with time_machine.travel(1_800_003_601, tick=False), pytest.raises(Unauthorized):
        tokens.verify(minted.token)


def test_a_ttl_written_with_a_decimal_point_is_whole_seconds() -> None:
    minted = service().mint("user-42", 600.0)
    assert abs(minted.expires_at.timestamp() - (time.time() + 600)) < 5


@pytest.mark.parametrize("subject", ["josé", "山田", "user 42", "\u3000x", "a" * 256])
def test_subjects_in_any_script_are_accepted(subject: str) -> None:
    tokens = service()
    assert tokens.verify(tokens.mint(subject).token) == Subject(subject)


@pytest.mark.parametrize(
    "subject", ["", "   ", "a\nb", "tab\there", "nul\x00", "c1\x85", "a" * 257]
)
def test_blank_or_control_character_subjects_are_refused(subject: str) -> None:
    with pytest.raises(InvalidFields):
        service().mint(subject)
