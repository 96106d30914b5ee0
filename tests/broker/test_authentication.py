"""Every client route resolves a subject or answers 401, and a 401 says nothing more."""

from collections.abc import Callable

import httpx
import pytest
from starlette.datastructures import Secret

from broker.identity.credentials import TokenService
from tests.broker.conftest import BrokerFactory
from tests.support.tampering import tampered

ROUTES = [
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/sessions/some-id"),
    ("GET", "/v1/sessions/some-id/result"),
    ("DELETE", "/v1/sessions/some-id"),
]
BAD_CREDENTIALS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer not.a.token"},
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
async def test_a_request_without_a_valid_token_is_401(
    broker: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await broker.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "/problems/unauthorized",
        "title": "Unauthorized",
        "status": 401,
        "reason": "unauthorized",
    }


@pytest.mark.parametrize(("method", "path"), [*ROUTES, ("POST", "/v1/tokens")])
@pytest.mark.parametrize("second", ["valid", "invalid", "empty"])
async def test_several_authorization_headers_are_refused_not_decided_by_the_first(
    broker: httpx.AsyncClient,
    mint: Callable[[str], dict[str, str]],
    method: str,
    path: str,
    second: str,
) -> None:
    from tests.broker.conftest import CANARY_SERVICE_KEY

    first = (
        f"Bearer {CANARY_SERVICE_KEY}" if path == "/v1/tokens" else mint("alice")["Authorization"]
    )
    other = {"valid": mint("bob")["Authorization"], "invalid": "Bearer not.a.token", "empty": ""}
    headers = [("Authorization", first), ("Authorization", other[second])]
    response = await broker.request(method, path, headers=headers, json={"sub": "alice"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "one Authorization header" in response.json()["detail"]


async def test_a_signing_key_removed_from_the_list_opens_nothing_once_the_broker_is_rebuilt(
    broker_factory: BrokerFactory,
) -> None:
    old_key, new_key = Secret("retiring-signing-key-" + "o" * 24), Secret("new-key-" + "n" * 32)
    old_token = TokenService((old_key,), 600, 3600).mint("alice").token
    headers = {"Authorization": f"Bearer {old_token}"}
    async with broker_factory(secret_keys=(new_key, old_key)) as rotating:
        for _ in range(2):  # verified, then answered from the verified-token cache
            assert (await rotating.get("/v1/sessions", headers=headers)).status_code == 200
    async with broker_factory(secret_keys=(new_key,)) as rebuilt:
        assert (await rebuilt.get("/v1/sessions", headers=headers)).status_code == 401


async def test_a_tampered_token_gets_the_same_401_as_no_token(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]]
) -> None:
    token = mint("alice")["Authorization"]
    refused = await broker.get("/v1/sessions", headers={"Authorization": tampered(token)})
    anonymous = await broker.get("/v1/sessions")
    assert refused.status_code == anonymous.status_code == 401
    assert refused.content == anonymous.content


async def test_a_service_key_mints_a_token_that_opens_the_api(broker: httpx.AsyncClient) -> None:
    from tests.broker.conftest import CANARY_SERVICE_KEY

    service = {"Authorization": f"Bearer {CANARY_SERVICE_KEY}"}
    minted = await broker.post("/v1/tokens", headers=service, json={"sub": "alice", "ttl": 120})
    assert minted.status_code == 201
    assert minted.headers["cache-control"] == "no-store"
    assert set(minted.json()) == {"token", "token_id", "expires_at"}  # no bindings asked
    user = {"Authorization": f"Bearer {minted.json()['token']}"}
    assert (await broker.get("/v1/sessions", headers=user)).status_code == 200


async def test_a_user_token_cannot_mint_tokens(
    broker: httpx.AsyncClient, mint: Callable[[str], dict[str, str]]
) -> None:
    response = await broker.post("/v1/tokens", headers=mint("alice"), json={"sub": "mallory"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sub": ""}, "sub"),
        ({"sub": "a", "ttl": "long"}, "ttl"),
        ({"sub": "a", "admin": 1}, "admin"),
    ],
)
async def test_minting_names_the_field_it_refuses(
    broker: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    from tests.broker.conftest import CANARY_SERVICE_KEY

    service = {"Authorization": f"Bearer {CANARY_SERVICE_KEY}"}
    response = await broker.post("/v1/tokens", headers=service, json=body)
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]
