"""`POST /v1/tokens` with bindings: each checked and named when wrong, each carried in the token."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.identity.credentials import Subject, TokenService
from broker.identity.grants import TOKEN_ID_LENGTH, Bindings
from broker.settings import Settings
from tests.broker.conftest import CANARY_SERVICE_KEY, BrokerFactory

SERVICE = {"Authorization": f"Bearer {CANARY_SERVICE_KEY}"}
POLICY = {
    "presets": {
        "meeting": {"config": {"language_config": {"languages": ["fr"]}}},
        "support-en": {"config": {"language_config": {"languages": ["en"]}}},
    }
}


@pytest.fixture
def policy_file(tmp_path: Path) -> str:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    return str(path)


@pytest.fixture
async def with_presets(
    broker_factory: BrokerFactory, policy_file: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A broker whose policy file has the presets `meeting` and `support-en`."""
    async with broker_factory(policy_file=policy_file) as client:
        yield client


def verified(settings: Settings, token: str) -> Subject:
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)
    return tokens.verify(token)


async def test_a_token_minted_with_bindings_answers_them_and_carries_them(
    with_presets: httpx.AsyncClient, settings: Settings
) -> None:
    asked = {"presets": ["support-en", "meeting"], "max_channels": 2, "max_duration_s": 900,
             "single_use": True, "client_ref": "order 42"}  # fmt: skip
    minted = await with_presets.post("/v1/tokens", headers=SERVICE, json={"sub": "alice", **asked})
    assert minted.status_code == 201, minted.text
    assert minted.headers["cache-control"] == "no-store"
    answer = minted.json()
    expected = {"presets": ["support-en", "meeting"], "max_channels": 2, "max_duration_s": 900,
                "max_sessions": 1, "client_ref": "order 42"}  # fmt: skip
    assert answer["bindings"] == expected
    subject = verified(settings, answer["token"])
    assert subject == Subject("alice")
    assert subject.grant.token_id == answer["token_id"]
    assert subject.grant.bindings == Bindings(
        presets=("support-en", "meeting"),
        max_channels=2,
        max_duration_s=900,
        max_sessions=1,
        client_ref="order 42",
    )
    user = {"Authorization": f"Bearer {answer['token']}"}
    assert (await with_presets.get("/v1/sessions", headers=user)).status_code == 200


@pytest.mark.parametrize(
    ("asked", "bound"),
    [
        ({"preset": "meeting"}, Bindings(presets=("meeting",))),
        ({"max_channels": 8}, Bindings(max_channels=8)),
        ({"max_duration_s": 10800}, Bindings(max_duration_s=10800)),
        ({"max_sessions": 3}, Bindings(max_sessions=3)),
        ({"single_use": False}, Bindings()),
        ({"client_ref": "ref-1"}, Bindings(client_ref="ref-1")),
    ],
)
async def test_each_binding_alone_is_read_back_from_the_token(
    with_presets: httpx.AsyncClient, settings: Settings, asked: dict[str, Any], bound: Bindings
) -> None:
    minted = await with_presets.post("/v1/tokens", headers=SERVICE, json={"sub": "bo", **asked})
    assert minted.status_code == 201, minted.text
    assert verified(settings, minted.json()["token"]).grant.bindings == bound
    assert minted.json().get("bindings", {}) == bound.as_response()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"preset": "unknown"}, ["preset"]),
        ({"presets": ["meeting", 7]}, ["presets"]),
        ({"preset": "meeting", "presets": ["meeting"]}, ["presets"]),
        ({"max_channels": 9}, ["max_channels"]),
        ({"max_duration_s": 10801}, ["max_duration_s"]),
        ({"max_sessions": 0}, ["max_sessions"]),
        ({"single_use": True, "max_sessions": 4}, ["single_use"]),
        ({"single_use": "true"}, ["single_use"]),
        ({"client_ref": "a\tb"}, ["client_ref"]),
        ({"client_ref": "r" * 129}, ["client_ref"]),
        ({"sub": "", "max_channels": 0, "client_ref": ""}, ["sub", "max_channels", "client_ref"]),
    ],
)
async def test_each_invalid_binding_is_a_422_naming_the_field(
    with_presets: httpx.AsyncClient, body: dict[str, Any], fields: list[str]
) -> None:
    response = await with_presets.post("/v1/tokens", headers=SERVICE, json={"sub": "a", **body})
    assert response.status_code == 422
    assert response.json()["reason"] == "invalid_fields"
    assert [error["field"] for error in response.json()["errors"]] == fields


async def test_a_preset_is_refused_where_the_policy_has_none(broker: httpx.AsyncClient) -> None:
    response = await broker.post("/v1/tokens", headers=SERVICE, json={"sub": "a", "preset": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "preset"
    assert "none are configured" in response.json()["errors"][0]["message"]


async def test_channels_are_bound_within_the_brokers_own_cap(
    broker_factory: BrokerFactory,
) -> None:
    async with broker_factory(max_channels=2) as capped:
        body = {"sub": "a", "max_channels": 3}
        refused = await capped.post("/v1/tokens", headers=SERVICE, json=body)
        assert refused.status_code == 422
        assert "from 1 to 2" in refused.json()["errors"][0]["message"]


async def test_every_minted_token_has_an_id_of_its_own(broker: httpx.AsyncClient) -> None:
    ids = set()
    for _ in range(3):
        minted = await broker.post("/v1/tokens", headers=SERVICE, json={"sub": "alice"})
        assert minted.status_code == 201
        assert "bindings" not in minted.json()
        ids.add(minted.json()["token_id"])
    assert len(ids) == 3
    assert all(len(token_id) == TOKEN_ID_LENGTH for token_id in ids)
    assert all(token_id.startswith(Subject("alice").key) for token_id in ids)


async def test_no_token_text_reaches_a_log_line(
    with_presets: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"sub": "alice", "preset": "meeting", "client_ref": "ref"}
    minted = (await with_presets.post("/v1/tokens", headers=SERVICE, json=body)).json()
    user = {"Authorization": f"Bearer {minted['token']}"}
    await with_presets.get("/v1/sessions", headers=user)
    await with_presets.delete(f"/v1/tokens/{minted['token_id']}", headers=user)
    await with_presets.get("/v1/sessions", headers=user)
    assert caplog.records
    signature = minted["token"].rsplit(".", 1)[-1]
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + str(getattr(record, "fields", ""))
        assert signature not in text, record.name
    assert any(
        logging.getLevelName(record.levelno) == "INFO" and record.name == "broker.access"
        for record in caplog.records
    )
