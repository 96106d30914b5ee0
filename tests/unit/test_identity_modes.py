"""Identity modes together: token, jwt and gateway, and which proxies are trusted."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers, Secret

from broker.errors import Unauthorized
from broker.identity.credentials import (
    Authenticator,
    GatewayIdentity,
    Subject,
    TokenService,
    TrustedProxies,
)

TOKENS = TokenService((Secret("k" * 40),), default_ttl_s=600, max_ttl_s=3600)
GATEWAY = GatewayIdentity("x-user-id", TrustedProxies(["10.0.0.0/8", "192.0.2.1", "fd00::/8"]))


class FakeJwt:
    async def verify(self, token: str) -> Subject:
        if token == "a.valid.jwt":
            return Subject("from-jwt")
        raise Unauthorized()


def authenticator(*modes: str) -> Authenticator:
    return Authenticator(TOKENS, modes=modes, jwt=FakeJwt(), gateway=GATEWAY)


@pytest.mark.parametrize(
    ("address", "trusted"),
    [
        ("10.1.2.3", True),
        ("192.0.2.1", True),
        ("192.0.2.2", False),
        ("::ffff:10.0.0.5", True),
        ("fd12::1", True),
        ("203.0.113.9", False),
        ("not-an-ip", False),
        ("", False),
        (None, False),
    ],
)
def test_trusted_proxies_are_ips_and_cidrs(address: str | None, trusted: bool) -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.1", "fd00::/8"])
    assert (address in proxies) is trusted


async def test_the_gateway_header_is_believed_from_a_trusted_proxy() -> None:
    headers = Headers({"x-user-id": "alice"})
    assert await authenticator("gateway").authenticate(headers, "10.0.0.7") == Subject("alice")


async def test_the_gateway_header_from_elsewhere_is_ignored() -> None:
    headers = Headers({"x-user-id": "alice"})
    with pytest.raises(Unauthorized):
        await authenticator("gateway").authenticate(headers, "203.0.113.9")


async def test_an_ignored_gateway_header_does_not_stop_a_valid_token() -> None:
    token = TOKENS.mint("bob").token
    headers = Headers({"x-user-id": "alice", "authorization": f"Bearer {token}"})
    subject = await authenticator("gateway", "token").authenticate(headers, "203.0.113.9")
    assert subject == Subject("bob")


@pytest.mark.parametrize(
    "raw_headers",
    [
        [(b"x-user-id", b"alice"), (b"x-user-id", b"mallory")],
        [(b"x-user-id", b"")],
        [(b"x-user-id", b"\x07bell")],
    ],
)
async def test_a_doubled_or_malformed_gateway_header_is_refused(
    raw_headers: list[tuple[bytes, bytes]],
) -> None:
    with pytest.raises(Unauthorized):
        await authenticator("gateway").authenticate(Headers(raw=raw_headers), "10.0.0.7")


async def test_modes_combine_and_each_accepts_its_own_credential() -> None:
    both = authenticator("token", "jwt")
    token = TOKENS.mint("carol").token
    bearer = {"authorization": f"Bearer {token}"}
    assert await both.authenticate(Headers(bearer)) == Subject("carol")
    assert await both.authenticate(Headers({"authorization": "Bearer a.valid.jwt"})) == Subject(
        "from-jwt"
    )
    with pytest.raises(Unauthorized):
        await both.authenticate(Headers({"authorization": "Bearer nonsense"}))


async def test_a_mode_that_is_not_configured_accepts_nothing() -> None:
    token = TOKENS.mint("carol").token
    with pytest.raises(Unauthorized):
        await authenticator("jwt").authenticate(Headers({"authorization": f"Bearer {token}"}))
    with pytest.raises(Unauthorized):
        await authenticator("token").authenticate(Headers({"x-user-id": "alice"}), "10.0.0.7")


def test_a_configured_mode_needs_its_verifier() -> None:
    with pytest.raises(ValueError, match="verifier"):
        Authenticator(TOKENS, modes=("jwt",))
