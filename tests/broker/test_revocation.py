"""Revoking a token or a subject counts at once on every instance, on one Redis as on a Cluster."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.exceptions import RedisError

from broker.identity.credentials import Subject, TokenService
from broker.identity.grants import Grant
from broker.identity.revocation import Revocations
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.keys import subject_revocations_key
from tests.broker.conftest import (
    CANARIES,
    CANARY_SECRET_KEY,
    CANARY_SERVICE_KEY,
    FAULT_SOCKET_TIMEOUT_S,
    BrokerFactory,
    running_broker,
)
from tests.support.dev_broker import BROKER, CLEAN_ENV
from tests.support.servers import start_redis_server

SERVICE = {"Authorization": f"Bearer {CANARY_SERVICE_KEY}"}
Headers = Callable[[str], dict[str, str]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def mint_over_http(
    client: httpx.AsyncClient, sub: str = "alice", **asked: Any
) -> dict[str, Any]:
    minted = await client.post("/v1/tokens", headers=SERVICE, json={"sub": sub, **asked})
    assert minted.status_code == 201, minted.text
    answer: dict[str, Any] = minted.json()
    return answer


async def status_of(client: httpx.AsyncClient, token: str) -> tuple[int, str | None]:
    response = await client.get("/v1/sessions", headers=bearer(token))
    reason = response.json().get("reason") if response.status_code != 200 else None
    return response.status_code, reason


async def test_a_token_revoked_on_one_instance_is_refused_at_once_on_another(
    broker_factory: BrokerFactory,
) -> None:
    async with broker_factory() as first, broker_factory() as second:
        revoked, kept = await mint_over_http(first), await mint_over_http(first)
        for _ in range(2):  # verified, then answered from the second's verified-token cache
            assert await status_of(second, revoked["token"]) == (200, None)
        deleted = await first.delete(f"/v1/tokens/{revoked['token_id']}", headers=SERVICE)
        assert deleted.status_code == 204
        assert await status_of(second, revoked["token"]) == (401, "token_revoked")
        assert await status_of(first, revoked["token"]) == (401, "token_revoked")
        assert await status_of(second, kept["token"]) == (200, None)
        # Revoking again changes nothing, and says so the same way.
        again = await second.delete(f"/v1/tokens/{revoked['token_id']}", headers=SERVICE)
        assert again.status_code == 204


async def test_the_reconnect_lookup_checks_revocation_with_the_record(
    broker: httpx.AsyncClient,
) -> None:
    """The lookup reads the record and the revocations in one script: both answers hold."""
    revoked, kept = await mint_over_http(broker), await mint_over_http(broker)
    created = await broker.post("/v1/sessions", headers=bearer(revoked["token"]), json={})
    lookup = f"/v1/sessions/{created.json()['id']}"
    assert (await broker.get(lookup, headers=bearer(revoked["token"]))).status_code == 200
    await broker.delete(f"/v1/tokens/{revoked['token_id']}", headers=SERVICE)
    refused = await broker.get(lookup, headers=bearer(revoked["token"]))
    assert (refused.status_code, refused.json()["reason"]) == (401, "token_revoked")
    # Revoked wins over missing: a revoked token learns nothing of which sessions exist.
    missing = await broker.get("/v1/sessions/nope", headers=bearer(revoked["token"]))
    assert (missing.status_code, missing.json()["reason"]) == (401, "token_revoked")
    assert (await broker.get(lookup, headers=bearer(kept["token"]))).status_code == 200
    revoked_subject = await broker.post("/v1/subjects/alice/revoke", headers=SERVICE)
    assert revoked_subject.status_code == 200
    refused = await broker.get(lookup, headers=bearer(kept["token"]))
    assert (refused.status_code, refused.json()["reason"]) == (401, "subject_revoked")


async def test_a_revoked_token_is_refused_on_the_facade_too(
    broker: httpx.AsyncClient,
) -> None:
    minted = await mint_over_http(broker)
    assert (await broker.get("/v2/live", headers=bearer(minted["token"]))).status_code == 200
    await broker.delete(f"/v1/tokens/{minted['token_id']}", headers=SERVICE)
    assert (await broker.get("/v2/live", headers=bearer(minted["token"]))).status_code == 401


async def test_a_subject_revocation_refuses_earlier_tokens_and_accepts_a_later_one(
    broker_factory: BrokerFactory, mint: Headers
) -> None:
    async with broker_factory() as first, broker_factory() as second:
        earlier = [(await mint_over_http(first))["token"], mint("alice")["Authorization"][7:]]
        bob = mint("bob")["Authorization"][7:]
        for token in earlier:
            assert await status_of(second, token) == (200, None)  # cached on the second
        before = time.time()
        revoked = await first.post("/v1/subjects/alice/revoke", headers=SERVICE)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["sub"] == "alice"
        assert before <= revoked.json()["not_before"] <= time.time()
        for token in earlier:
            assert await status_of(second, token) == (401, "subject_revoked")
        assert await status_of(second, bob) == (200, None)
        # Minted right after, within the same second: its issue time is precise, so it works.
        later = await mint_over_http(second)
        assert await status_of(first, later["token"]) == (200, None)


async def test_not_before_can_be_set_and_never_moves_back(broker: httpx.AsyncClient) -> None:
    minted = await mint_over_http(broker)
    past = time.time() - 3600
    set_past = await broker.post("/v1/subjects/alice/revoke", headers=SERVICE,
                                 json={"not_before": past})  # fmt: skip
    assert set_past.json()["not_before"] == pytest.approx(past)
    assert await status_of(broker, minted["token"]) == (200, None)  # issued after it
    await broker.post("/v1/subjects/alice/revoke", headers=SERVICE, json={})
    assert await status_of(broker, minted["token"]) == (401, "subject_revoked")
    back = await broker.post("/v1/subjects/alice/revoke", headers=SERVICE,
                             json={"not_before": past})  # fmt: skip
    assert back.json()["not_before"] > past + 3000
    assert await status_of(broker, minted["token"]) == (401, "subject_revoked")


async def test_the_revocations_outlive_every_token_they_refuse(
    broker: httpx.AsyncClient, settings: Settings
) -> None:
    minted = await mint_over_http(broker)
    client = open_redis(settings)
    key = subject_revocations_key(Subject("alice").key)
    try:
        await broker.delete(f"/v1/tokens/{minted['token_id']}", headers=SERVICE)
        ttl = await client.ttl(key)
        assert settings.token_max_ttl_s - 5 <= ttl <= settings.token_max_ttl_s
        ahead = time.time() + 600
        await broker.post("/v1/subjects/alice/revoke", headers=SERVICE, json={"not_before": ahead})
        ttl = await client.ttl(key)
        assert settings.token_max_ttl_s + 590 <= ttl <= settings.token_max_ttl_s + 601
        await broker.post("/v1/subjects/alice/revoke", headers=SERVICE, json={})
        assert await client.ttl(key) >= settings.token_max_ttl_s + 590, "never shortened"
        fields = await client.hgetall(key)
        assert set(fields) == {"not-before", f"token:{minted['token_id']}"}
    finally:
        await client.aclose()


async def test_a_holder_may_revoke_its_own_token_and_no_other(broker: httpx.AsyncClient) -> None:
    own, other = await mint_over_http(broker), await mint_over_http(broker)
    refused = await broker.delete(f"/v1/tokens/{other['token_id']}", headers=bearer(own["token"]))
    assert refused.status_code == 403
    assert await status_of(broker, other["token"]) == (200, None)
    deleted = await broker.delete(f"/v1/tokens/{own['token_id']}", headers=bearer(own["token"]))
    assert deleted.status_code == 204
    assert await status_of(broker, own["token"]) == (401, "token_revoked")
    assert await status_of(broker, other["token"]) == (200, None)


async def test_unknown_and_garbled_token_ids_are_404(broker: httpx.AsyncClient) -> None:
    token_id = (await mint_over_http(broker))["token_id"]
    forged = token_id[:-4] + ("0000" if not token_id.endswith("0000") else "1111")
    for unknown in ("abc", forged, token_id.upper(), "x" * 64, token_id + "0"):
        response = await broker.delete(f"/v1/tokens/{unknown}", headers=SERVICE)
        assert response.status_code == 404, unknown
        assert response.json()["reason"] == "not_found"
    anonymous = await broker.delete(f"/v1/tokens/{token_id}")
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/subjects/alice/revoke", {"not_before": "now"}, "not_before"),
        ("/v1/subjects/alice/revoke", {"not_before": True}, "not_before"),
        ("/v1/subjects/alice/revoke", {"not_before": -1}, "not_before"),
        ("/v1/subjects/alice/revoke", {"not_before": 10**12}, "not_before"),
        ("/v1/subjects/alice/revoke", {"until": 1}, "until"),
        ("/v1/subjects/alice/revoke", [], "body"),
        ("/v1/subjects/%20/revoke", {}, "sub"),
    ],
)
async def test_a_bad_subject_revocation_is_a_422_naming_the_field(
    broker: httpx.AsyncClient, path: str, body: object, field: str
) -> None:
    response = await broker.post(path, headers=SERVICE, json=body)
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_only_the_service_key_revokes_a_subject(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    alice = mint("alice")
    assert (await broker.post("/v1/subjects/alice/revoke", headers=alice)).status_code == 401
    assert (await broker.post("/v1/subjects/alice/revoke")).status_code == 401
    assert (await broker.get("/v1/sessions", headers=alice)).status_code == 200


async def test_a_gateway_subject_is_not_affected_by_not_before(settings: Settings) -> None:
    client = open_redis(settings)
    revocations = Revocations(client, settings)
    try:
        await revocations.revoke_subject("carol", time.time() + 60)
        await revocations.check(Subject("carol"))  # no issue time: the gateway answers for it
        with pytest.raises(Exception, match="revoked") as refused:
            await revocations.check(Subject("carol", grant=Grant(issued_at=time.time())))
        assert getattr(refused.value, "reason", None) == "subject_revoked"
    finally:
        await client.aclose()


# The fault is injected into one redis-server process of its own: one topology is enough.
@pytest.mark.parametrize("redis_topology", ["redis-server"], indirect=True)
async def test_redis_down_during_the_check_is_a_503(settings: Settings, tmp_path: Path) -> None:
    server = start_redis_server(tmp_path)
    fast = replace(
        settings,
        redis_url=server.url,
        redis_socket_timeout_s=FAULT_SOCKET_TIMEOUT_S,
        redis_connect_timeout_s=FAULT_SOCKET_TIMEOUT_S,
        redis_pool_timeout_s=FAULT_SOCKET_TIMEOUT_S,
    )
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)
    minted = tokens.mint("alice")
    try:
        async with running_broker(fast) as broker:
            assert await status_of(broker, minted.token) == (200, None)
            server.stop()
            assert await status_of(broker, minted.token) == (503, "store_unavailable")
            client = open_redis(fast)
            try:
                with pytest.raises(RedisError):
                    await Revocations(client, fast).check(tokens.verify(minted.token))
            finally:
                await client.aclose()
    finally:
        server.stop()


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **CLEAN_ENV,
        "REDIS_URL": settings.redis_url or "",
        "REDIS_CLUSTER": "true" if settings.redis_cluster else "false",
        "BROKER_SECRET_KEYS": CANARY_SECRET_KEY,
    }
    ran = subprocess.run([*BROKER, *args], capture_output=True, text=True, timeout=60, env=env)
    for canary in CANARIES:
        assert canary not in ran.stdout + ran.stderr
    return ran


async def test_the_cli_revokes_a_token_and_a_subject(
    broker: httpx.AsyncClient, settings: Settings
) -> None:
    one, two = await mint_over_http(broker), await mint_over_http(broker)
    ran = run_cli(settings, "token", "revoke", one["token_id"])
    assert ran.returncode == 0, ran.stderr
    assert one["token_id"] in ran.stdout
    assert await status_of(broker, one["token"]) == (401, "token_revoked")
    assert await status_of(broker, two["token"]) == (200, None)
    ran = run_cli(settings, "token", "revoke", "--subject", "alice")
    assert ran.returncode == 0, ran.stderr
    assert await status_of(broker, two["token"]) == (401, "subject_revoked")
    unknown = run_cli(settings, "token", "revoke", "0" * 64)
    assert unknown.returncode == 1
    assert "not a token id" in unknown.stderr
    both = run_cli(settings, "token", "revoke", one["token_id"], "--subject", "alice")
    assert both.returncode == 2


async def test_a_create_is_refused_for_a_revoked_credential_before_anything_else(
    broker: httpx.AsyncClient, settings: Settings
) -> None:
    """A create reads the revocations in its admission script: whatever else is wrong with the
    request (its body, its Idempotency-Key) the answer is 401, and nothing is admitted."""
    revoked, kept = await mint_over_http(broker), await mint_over_http(broker)
    deleted = await broker.delete(f"/v1/tokens/{revoked['token_id']}", headers=SERVICE)
    assert deleted.status_code == 204
    requests: list[tuple[dict[str, str], dict[str, Any] | bytes]] = [
        ({}, {}),
        ({}, {"model": 17}),
        ({}, b"{not json"),
        ({"Idempotency-Key": "order-1"}, {}),
        ({"Idempotency-Key": " "}, {}),
    ]
    for extra, body in requests:
        headers = {**bearer(revoked["token"]), **extra}
        if isinstance(body, bytes):
            answer = await broker.post("/v1/sessions", headers=headers, content=body)
        else:
            answer = await broker.post("/v1/sessions", headers=headers, json=body)
        assert (answer.status_code, answer.json()["reason"]) == (401, "token_revoked"), extra
    invalid = await broker.post("/v1/sessions", headers=bearer(kept["token"]), json={"model": 17})
    assert invalid.status_code == 422
    client = open_redis(settings)
    try:
        leases = await client.keys("broker:*:leases")
        assert leases == []
    finally:
        await client.aclose()
    created = await broker.post("/v1/sessions", headers=bearer(kept["token"]), json={})
    assert created.status_code == 201

    revoked_subject = await broker.post("/v1/subjects/alice/revoke", headers=SERVICE)
    assert revoked_subject.status_code == 200
    refused = await broker.post("/v1/sessions", headers=bearer(kept["token"]), json={})
    assert (refused.status_code, refused.json()["reason"]) == (401, "subject_revoked")
    # Minted right after, within the same second: the script compares issue times as precisely.
    later = await mint_over_http(broker)
    admitted = await broker.post("/v1/sessions", headers=bearer(later["token"]), json={})
    assert admitted.status_code == 201
