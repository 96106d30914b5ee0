"""Bindings asked at mint: checked field by field, carried in the token, read back on verify."""

from __future__ import annotations

import time
from typing import Any

import pytest
import time_machine
from starlette.datastructures import Secret

from broker.errors import InvalidFields, Unauthorized
from broker.identity.credentials import Subject, TokenService
from broker.identity.grants import (
    NO_BINDINGS,
    BindingRules,
    Bindings,
    TokenIds,
)

KEY, OLD_KEY = Secret("k" * 40), Secret("o" * 40)
RULES = BindingRules(max_channels=4, presets=frozenset({"meeting", "support-en"}))


def service(*keys: Secret, rules: BindingRules = RULES) -> TokenService:
    return TokenService(keys or (KEY,), default_ttl_s=600, max_ttl_s=3600, binding_rules=rules)


def refused_fields(body: dict[str, Any], rules: BindingRules = RULES) -> list[str]:
    with pytest.raises(InvalidFields) as raised:
        service(rules=rules).mint_request(body)
    return [problem.field for problem in raised.value.problems]


@pytest.mark.parametrize(
    ("asked", "bound"),
    [
        ({"preset": "meeting"}, Bindings(presets=("meeting",))),
        ({"presets": ["support-en", "meeting", "support-en"]},
         Bindings(presets=("support-en", "meeting"))),
        ({"max_channels": 2}, Bindings(max_channels=2)),
        ({"max_channels": 4.0}, Bindings(max_channels=4)),
        ({"max_duration_s": 600}, Bindings(max_duration_s=600)),
        ({"max_sessions": 5}, Bindings(max_sessions=5)),
        ({"single_use": True}, Bindings(max_sessions=1)),
        ({"single_use": True, "max_sessions": 1}, Bindings(max_sessions=1)),
        ({"single_use": False, "max_sessions": 3}, Bindings(max_sessions=3)),
        ({"client_ref": "order-42 / café"}, Bindings(client_ref="order-42 / café")),
        ({"max_channels": None, "client_ref": None}, NO_BINDINGS),
    ],
)  # fmt: skip
def test_each_binding_is_read_back_from_the_verified_token(
    asked: dict[str, Any], bound: Bindings
) -> None:
    tokens = service()
    minted = tokens.mint_request({"sub": "alice", **asked})
    assert minted.bindings == bound
    subject = tokens.verify(minted.token)
    assert subject == Subject("alice")
    assert subject.grant.bindings == bound
    assert subject.grant.token_id == minted.token_id


def test_every_binding_at_once_survives_the_round_trip() -> None:
    asked = {"presets": ["meeting"], "max_channels": 1, "max_duration_s": 10800,
             "max_sessions": 1_000_000, "client_ref": "x" * 128}  # fmt: skip
    tokens = service()
    minted = tokens.mint_request({"sub": "alice", "ttl": 60, **asked})
    assert minted.bindings.as_response() == asked
    assert tokens.verify(minted.token).grant.bindings.as_response() == asked


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"preset": "unknown"}, ["preset"]),
        ({"preset": 3}, ["preset"]),
        ({"preset": "has space"}, ["preset"]),
        ({"presets": []}, ["presets"]),
        ({"presets": "meeting"}, ["presets"]),
        ({"presets": ["meeting", "nope"]}, ["presets"]),
        ({"presets": ["meeting"] * 33}, ["presets"]),
        ({"preset": "meeting", "presets": ["meeting"]}, ["presets"]),
        ({"max_channels": 0}, ["max_channels"]),
        ({"max_channels": 5}, ["max_channels"]),  # above the broker's cap (4 here)
        ({"max_channels": True}, ["max_channels"]),
        ({"max_channels": "2"}, ["max_channels"]),
        ({"max_channels": 1.5}, ["max_channels"]),
        ({"max_duration_s": 0}, ["max_duration_s"]),
        ({"max_duration_s": 3 * 3600 + 1}, ["max_duration_s"]),  # longer than Gladia allows
        ({"max_sessions": 0}, ["max_sessions"]),
        ({"max_sessions": 10**12}, ["max_sessions"]),
        ({"max_sessions": -1}, ["max_sessions"]),
        ({"single_use": "yes"}, ["single_use"]),
        ({"single_use": 1}, ["single_use"]),
        ({"single_use": True, "max_sessions": 2}, ["single_use"]),
        ({"client_ref": ""}, ["client_ref"]),
        ({"client_ref": "x" * 129}, ["client_ref"]),
        ({"client_ref": "line\nbreak"}, ["client_ref"]),
        ({"client_ref": "c1\x85"}, ["client_ref"]),
        ({"client_ref": 42}, ["client_ref"]),
        ({"sub": "", "ttl": 0, "max_channels": 9, "client_ref": "\x00"},
         ["sub", "ttl", "max_channels", "client_ref"]),
    ],
)  # fmt: skip
def test_each_invalid_binding_is_named(body: dict[str, Any], fields: list[str]) -> None:
    assert refused_fields({"sub": "alice", **body}) == fields


def test_preset_names_are_checked_for_shape_only_when_the_presets_are_not_known() -> None:
    rules = BindingRules(presets=None)
    minted = service(rules=rules).mint_request({"sub": "a", "preset": "anything"})
    assert minted.bindings.presets == ("anything",)
    assert refused_fields({"sub": "a", "preset": "no/slash"}, rules) == ["preset"]


def test_no_preset_can_be_bound_when_none_is_configured() -> None:
    nothing_configured = BindingRules(presets=frozenset())
    assert refused_fields({"sub": "a", "preset": "meeting"}, nothing_configured) == ["preset"]


def test_a_token_without_bindings_stays_small_and_still_has_an_id() -> None:
    tokens = service()
    minted = tokens.mint("alice")
    assert minted.bindings == NO_BINDINGS
    assert len(minted.token) < 200
    grant = tokens.verify(minted.token).grant
    assert grant.token_id == minted.token_id
    assert grant.token_id is not None and grant.token_id.startswith(Subject("alice").key)


def test_every_token_gets_its_own_id() -> None:
    tokens = service()
    ids = {tokens.mint("alice").token_id for _ in range(50)}
    assert len(ids) == 50


def test_the_issue_time_is_precise_to_well_under_a_second() -> None:
    tokens = service()
    with time_machine.travel(1_800_000_000.25, tick=False):
        minted = tokens.mint("alice")
    with time_machine.travel(1_800_000_001, tick=False):
        issued_at = tokens.verify(minted.token).grant.issued_at
    assert issued_at == pytest.approx(1_800_000_000.25, abs=1e-5)


def test_a_token_id_names_its_subject_and_only_this_brokers_ids_are_known() -> None:
    ids = TokenIds((KEY,))
    token_id = ids.new(Subject("alice").key)
    assert ids.subject_key(token_id) == Subject("alice").key
    forged = token_id[:-1] + ("0" if token_id[-1] != "0" else "1")
    other_subject = Subject("bob").key + token_id[32:]
    for unknown in (forged, other_subject, token_id.upper(), token_id + "0", "", "x" * 64, None):
        assert ids.subject_key(unknown) is None
    assert TokenIds((Secret("z" * 40),)).subject_key(token_id) is None


def test_ids_made_under_a_retiring_key_are_known_while_it_is_listed() -> None:
    token_id = TokenIds((OLD_KEY,)).new(Subject("alice").key)
    assert TokenIds((KEY, OLD_KEY)).subject_key(token_id) == Subject("alice").key
    assert TokenIds((KEY,)).subject_key(token_id) is None


def test_a_well_signed_token_with_malformed_bindings_is_401() -> None:
    from itsdangerous import URLSafeTimedSerializer

    from broker.identity.credentials import USER_TOKEN_SALT

    serializer = URLSafeTimedSerializer([str(KEY)], salt=USER_TOKEN_SALT)
    now = int(time.time())
    for extra in ({"ch": "2"}, {"pr": "meeting"}, {"jti": "short"}, {"iat": "then"},
                  {"cr": 7}, {"ns": True}):  # fmt: skip
        token = serializer.dumps({"sub": "alice", "exp": now + 60, **extra})
        with pytest.raises(Unauthorized):
            service().verify(token)


def test_a_token_minted_before_ids_existed_still_verifies_with_its_signing_time() -> None:
    from itsdangerous import URLSafeTimedSerializer

    from broker.identity.credentials import USER_TOKEN_SALT

    serializer = URLSafeTimedSerializer([str(KEY)], salt=USER_TOKEN_SALT)
    token = serializer.dumps({"sub": "alice", "exp": int(time.time()) + 60})
    grant = service().verify(token).grant
    assert grant.token_id is None
    assert grant.issued_at == pytest.approx(time.time(), abs=5)
    assert grant.bindings == NO_BINDINGS
