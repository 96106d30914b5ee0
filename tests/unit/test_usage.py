"""What a final result is billed, the day it counts on, and the days `GET /v1/usage` reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from starlette.datastructures import QueryParams

from broker.errors import BadRequest
from broker.policy.usage import MAX_SESSION_SECONDS, billed_seconds, finished_day, utc_day
from broker.web.routes.usage import requested_days

NOW = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
TODAY = NOW.date()


@pytest.mark.parametrize(
    ("result", "seconds"),
    [
        # Gladia's own figure first (contract §2.1: audio_duration times channels).
        ({"result": {"metadata": {"billing_time": 6.4, "audio_duration": 3.2}}}, 6.4),
        (
            {"result": {"metadata": {"audio_duration": 3.0, "number_of_distinct_channels": 2}}},
            6.0,
        ),
        ({"file": {"audio_duration": 2.5, "number_of_channels": 4}}, 10.0),
        ({"file": {"audio_duration": 2.5}, "request_params": {"channels": 2}}, 5.0),
        ({"file": {"audio_duration": 2.5}}, 2.5),
        ({"status": "error", "result": None, "file": None}, 0.0),
        ({"result": {"metadata": {"billing_time": "12"}}, "file": {"audio_duration": 1}}, 1.0),
        ({"result": {"metadata": {"billing_time": -5, "audio_duration": True}}}, 0.0),
        ({"result": {"metadata": {"billing_time": float("inf")}}}, 0.0),
        ({"result": {"metadata": {"billing_time": 10**9}}}, MAX_SESSION_SECONDS),
    ],
)
def test_a_result_is_billed_as_gladia_bills_it(result: dict[str, Any], seconds: float) -> None:
    assert billed_seconds(result) == seconds


def test_a_session_counts_on_the_utc_day_gladia_completed_it() -> None:
    just_before_midnight = {"completed_at": "2026-11-25T23:59:59.000Z"}
    assert finished_day(just_before_midnight, NOW + timedelta(hours=1)) == "2026-11-25"
    in_paris = {"completed_at": "2026-11-26T00:30:00+01:00"}
    assert finished_day(in_paris, NOW) == "2026-11-25"
    assert finished_day({"completed_at": "2026-11-25T10:00:00"}, NOW) == "2026-11-25"


@pytest.mark.parametrize(
    "completed_at", [None, "", "not a time", "1970-01-01T00:00:00Z", "2030-01-01T00:00:00Z", 12]
)
def test_without_a_believable_completion_time_it_counts_today(completed_at: object) -> None:
    assert finished_day({"completed_at": completed_at}, NOW) == utc_day(NOW) == "2026-11-25"


def days(query: str) -> tuple[date, date]:
    return requested_days(QueryParams(query), TODAY)


def test_the_days_default_to_today_and_from_to_to() -> None:
    assert days("") == (TODAY, TODAY)
    assert days("to=2026-11-20") == (date(2026, 11, 20), date(2026, 11, 20))
    assert days("from=2026-11-20") == (date(2026, 11, 20), TODAY)
    assert days("from=2026-10-26&to=2026-11-25") == (date(2026, 10, 26), TODAY)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-10-25", "from"),  # 32 days
        ("from=2026-11-26", "from"),  # after today
        ("to=2026-13-01", "to"),
        ("to=2026-1-01", "to"),
        ("from=+2026-01-01", "from"),
        ("to=2026-11-01&to=2026-11-02", "to"),
        ("limit=3", "limit"),
    ],
)
def test_a_bad_range_names_its_parameter(query: str, field: str) -> None:
    with pytest.raises(BadRequest) as refused:
        days(query)
    assert [problem.field for problem in refused.value.problems] == [field]
    assert field in str(refused.value)
