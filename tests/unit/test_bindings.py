"""A token's bindings against one create body, and `client_ref` on the record and the relay."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.errors import Forbidden
from broker.events.relay import relay_body
from broker.identity.grants import NO_BINDINGS, Bindings
from broker.policy.bindings import check_bindings
from broker.store.events import StreamEntry
from broker.store.session_record import SessionRecord
from tests.support.records import session_record

TOKEN = "t" * 48


def refusal(bindings: Bindings, body: object, init: dict[str, Any]) -> Forbidden:
    with pytest.raises(Forbidden) as refused:
        check_bindings(bindings, body, init, TOKEN)
    return refused.value


def test_no_bindings_allow_anything_the_policy_allows() -> None:
    check_bindings(NO_BINDINGS, {"channels": 8}, {"channels": 8}, None)


def test_bound_presets_refuse_a_body_without_one_or_with_another() -> None:
    bindings = Bindings(presets=("meeting", "call"))
    missing = refusal(bindings, {"sample_rate": 16000}, {})
    assert missing.reason == "binding_preset"
    assert missing.status_code == 403
    assert "meeting, call" in str(missing)
    other = refusal(bindings, {"preset": "podcast"}, {})
    assert other.reason == "binding_preset"
    assert "'podcast'" in str(other)
    check_bindings(bindings, {"preset": "call"}, {}, TOKEN)


def test_bound_channels_compare_with_the_init_body_and_gladias_default_of_one() -> None:
    bindings = Bindings(max_channels=1)
    refused = refusal(bindings, {"preset": "stereo"}, {"channels": 2})
    assert refused.reason == "binding_channels"
    assert "2 channels" in str(refused) and "at most 1" in str(refused)
    check_bindings(bindings, {}, {}, TOKEN)
    check_bindings(bindings, {}, {"channels": 1}, TOKEN)


def test_counted_sessions_need_a_token_id() -> None:
    with pytest.raises(Forbidden) as refused:
        check_bindings(Bindings(max_sessions=1), {}, {}, None)
    assert refused.value.reason == "binding_sessions"
    check_bindings(Bindings(max_sessions=1), {}, {}, TOKEN)


def test_the_stored_record_keeps_client_ref_only_when_it_has_one() -> None:
    plain = session_record("s-1", "owner", "r-1")
    bound = replace(plain, client_ref="order-17")
    assert "order-17" in bound.stored().split("\n")
    assert len(bound.stored()) == len(plain.stored()) + len("order-17")
    assert SessionRecord.from_stored("owner", "s-1", bound.stored()) == bound
    assert SessionRecord.from_stored("owner", "s-1", plain.stored()) == plain


def test_a_record_has_expired_once_its_expiry_has_passed() -> None:
    record = session_record("s-1", "owner", "r-1")  # expires 2026-11-25T13:00:00.000Z
    expiry = datetime(2026, 11, 25, 13, tzinfo=UTC)
    assert not record.has_expired(expiry - timedelta(milliseconds=1))
    assert record.has_expired(expiry)


def test_the_relayed_event_carries_client_ref_when_the_session_has_one() -> None:
    entry = StreamEntry("1-0", "live.end_session", "callback", "2026-11-25T10:00:00Z", {})
    with_ref = json.loads(relay_body("s-1", "alice", entry, "order-17"))
    assert with_ref["client_ref"] == "order-17"
    assert "client_ref" not in json.loads(relay_body("s-1", "alice", entry))
