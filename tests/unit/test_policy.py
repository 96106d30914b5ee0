from typing import Any

import pytest

from broker.errors import InvalidFields
from broker.policy import SessionPolicy


def build(body: object, max_channels: int = 2, region: str | None = None) -> Any:
    return SessionPolicy(max_channels, region).build_init_request(body, subject_key="abc123")


def refused_fields(body: object) -> list[str]:
    with pytest.raises(InvalidFields) as raised:
        build(body)
    return [problem.field for problem in raised.value.problems]


def test_an_empty_body_gets_acknowledgments_and_the_broker_metadata() -> None:
    init = build({})
    assert init.body == {
        "messages_config": {"receive_acknowledgments": True},
        "custom_metadata": {"broker_request_id": init.request_id, "broker_subject": "abc123"},
    }
    assert init.region is None


def test_allowed_fields_pass_through_exactly() -> None:
    body = {
        "encoding": "wav/pcm",
        "bit_depth": 16,
        "sample_rate": 48000,
        "channels": 2,
        "endpointing": 0.3,
        "maximum_duration_without_endpointing": 10,
        "language_config": {"languages": ["fr", "en"], "code_switching": True},
        "messages_config": {"receive_partial_transcripts": True},
        "region": "us-west",
    }
    init = build(body)
    assert init.region == "us-west"
    assert init.body["language_config"] == {"languages": ["fr", "en"], "code_switching": True}
    assert init.body["messages_config"] == {
        "receive_partial_transcripts": True,
        "receive_acknowledgments": True,
    }
    assert "region" not in init.body
    assert {k: init.body[k] for k in ("encoding", "bit_depth", "sample_rate", "channels")} == {
        "encoding": "wav/pcm",
        "bit_depth": 16,
        "sample_rate": 48000,
        "channels": 2,
    }


def test_the_default_region_applies_when_the_client_names_none() -> None:
    assert build({}, region="eu-west").region == "eu-west"


def test_eight_bit_encodings_get_their_bit_depth() -> None:
    assert build({"encoding": "wav/ulaw"}).body["bit_depth"] == 8
    assert refused_fields({"encoding": "wav/alaw", "bit_depth": 16}) == ["bit_depth"]


@pytest.mark.parametrize("field", ["callback", "callback_config", "custom_metadata"])
def test_fields_the_broker_owns_are_refused(field: str) -> None:
    assert refused_fields({field: {"url": "https://evil.example"}}) == [field]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"model": "solaria-1"}, ["model"]),
        ({"post_processing": {"summarization": True}}, ["post_processing.summarization"]),
        ({"encoding": "mp3"}, ["encoding"]),
        ({"sample_rate": 22050}, ["sample_rate"]),
        ({"sample_rate": True}, ["sample_rate"]),
        ({"bit_depth": "16"}, ["bit_depth"]),
        ({"channels": 3}, ["channels"]),
        ({"channels": 0}, ["channels"]),
        ({"endpointing": 20}, ["endpointing"]),
        (
            {"language_config": {"languages": ["xx", "en", 7]}},
            ["language_config.languages[0]", "language_config.languages[2]"],
        ),
        ({"language_config": {"languages": "en"}}, ["language_config.languages"]),
        ({"language_config": {"dialect": "x"}}, ["language_config.dialect"]),
        ({"language_config": []}, ["language_config"]),
        (
            {"messages_config": {"receive_partial_transcripts": "yes"}},
            ["messages_config.receive_partial_transcripts"],
        ),
        (
            {"messages_config": {"receive_acknowledgments": False}},
            ["messages_config.receive_acknowledgments"],
        ),
        ({"messages_config": {"url": "x"}}, ["messages_config.url"]),
        ({"region": "moon"}, ["region"]),
        ([], ["body"]),
        ("text", ["body"]),
    ],
)
def test_invalid_or_unknown_fields_are_refused_by_name(body: object, fields: list[str]) -> None:
    assert refused_fields(body) == fields


def test_every_problem_is_named_at_once() -> None:
    fields = refused_fields({"encoding": "x", "channels": 99, "callback": True})
    assert sorted(fields) == ["callback", "channels", "encoding"]
