"""A session record's stored text: its lines, the JSON it falls back to, and both read back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.policy.init_body import MESSAGE_FLAGS
from broker.store.session_record import STORED_MESSAGE_FLAGS, SessionRecord
from tests.support.records import session_record

RECORD = replace(
    session_record("s-1", "owner", "a" * 32, url="wss://api.gladia.io/v2/live?token=t"),
    created_at="2026-12-07T09:12:00.123Z",
    expires_at="2026-12-07T12:12:00.000Z",
    messages_config={"receive_partial_transcripts": False, "receive_acknowledgments": True},
)


def round_trip(record: SessionRecord) -> SessionRecord | None:
    return SessionRecord.from_stored(record.owner, record.id, record.stored())


def test_a_record_is_stored_as_lines_with_times_in_milliseconds() -> None:
    lines = RECORD.stored().split("\n")
    assert lines == [
        "created",
        "a" * 32,
        "wss://api.gladia.io/v2/live?token=t",
        "1796634720123",  # date -u -d 2026-12-07T09:12:00Z +%s, then the milliseconds
        "1796645520000",
        "0-----1",
        "",
        "",
        "",
    ]
    assert round_trip(RECORD) == RECORD


def test_every_optional_field_reads_back() -> None:
    full = replace(RECORD, client_ref="order-17", subject="alice", ended_event="1-0")
    assert round_trip(full) == full
    flags = dict.fromkeys(STORED_MESSAGE_FLAGS, True)
    assert round_trip(replace(RECORD, messages_config=flags)) == replace(
        RECORD, messages_config=flags
    )
    assert round_trip(replace(RECORD, messages_config={})) == replace(RECORD, messages_config={})


@pytest.mark.parametrize(
    "changes",
    [
        {"url": "wss://x/\nlive"},
        {"subject": "al\nice"},
        {"client_ref": ""},
        {"created_at": "2026-12-07T09:12:00.123456Z"},  # would not read back the same
        {"created_at": "2026-12-07T10:12:00.123+01:00"},
        {"expires_at": "not a time"},
        {"created_at": "1796649120123"},  # would read back as a time
        {"messages_config": {"receive_everything": True}},
        {"status": "{odd"},
    ],
)
def test_what_the_lines_cannot_hold_is_stored_as_json_and_reads_back(
    changes: dict[str, object],
) -> None:
    odd = replace(RECORD, **changes)  # type: ignore[arg-type]
    assert odd.stored().startswith("{")
    assert round_trip(odd) == odd


@pytest.mark.parametrize(
    "stored",
    ["", "created", "\n" * 9, "created\nr\nu\n17x\n1\n1\n\n\n", "created\nr\nu\n1\n1\n2\n\n\n"],
)
def test_text_that_is_not_a_record_reads_as_none(stored: str) -> None:
    assert SessionRecord.from_stored("owner", "s-1", stored) is None


def test_a_broker_record_costs_a_third_less_than_its_json() -> None:
    assert len(RECORD.stored()) < 0.6 * len(RECORD.to_json())


def test_every_flag_the_policy_lets_through_has_its_place_in_the_stored_form() -> None:
    assert set(MESSAGE_FLAGS) <= set(STORED_MESSAGE_FLAGS)
