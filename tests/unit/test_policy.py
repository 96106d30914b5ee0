"""Every rule of the create policy: allowed fields, formats, languages, add-ons and caps."""

import json
from typing import Any

import pytest

from broker.errors import InvalidFields
from broker.policy.init_body import SessionPolicy
from broker.policy.rules import PolicyRules, SummarizationRule, TranslationRule, VocabularyRule


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


@pytest.mark.parametrize("field", ["callback", "callback_config"])
def test_fields_the_broker_owns_are_refused(field: str) -> None:
    assert refused_fields({field: {"url": "https://evil.example"}}) == [field]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"model": "solaria-2"}, ["model"]),
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


# --- Rules from the policy: narrowed formats and languages, add-ons with caps -----------------

NARROW = PolicyRules(
    encodings=("wav/pcm",),
    sample_rates=(16000,),
    bit_depths=(16,),
    max_channels=2,
    languages=frozenset({"en", "fr"}),
    max_languages=2,
    regions=("eu-west",),
)
ADDONS = PolicyRules(
    translation=TranslationRule(target_languages=frozenset({"en", "de", "wo"}), max_targets=2),
    named_entity_recognition=True,
    sentiment_analysis=True,
    summarization=SummarizationRule(types=("concise",)),
    custom_vocabulary=VocabularyRule(
        max_entries=3, max_total_chars=40, max_words_per_entry=2, max_pronunciations=1
    ),
)


def refused_by(rules: PolicyRules, body: object) -> list[str]:
    with pytest.raises(InvalidFields) as raised:
        SessionPolicy(8, None, rules).build_init_request(body, "abc123")
    return [problem.field for problem in raised.value.problems]


def built_by(rules: PolicyRules, body: object) -> dict[str, Any]:
    init = SessionPolicy(8, None, rules).build_init_request(body, "abc123")
    body_sent: dict[str, Any] = init.body
    return body_sent


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"encoding": "wav/ulaw"}, ["encoding"]),
        ({"sample_rate": 48000}, ["sample_rate"]),
        ({"bit_depth": 24}, ["bit_depth"]),
        ({"channels": 3}, ["channels"]),
        ({"language_config": {"languages": ["de"]}}, ["language_config.languages[0]"]),
        ({"language_config": {"languages": ["en", "fr", "en"]}}, ["language_config.languages"]),
        ({"language_config": {"languages": ["en", "en"]}}, ["language_config.languages[1]"]),
        ({"region": "us-west"}, ["region"]),
    ],
)
def test_a_narrowed_policy_refuses_what_it_leaves_out(body: object, fields: list[str]) -> None:
    assert refused_by(NARROW, body) == fields


def test_a_narrowed_policy_keeps_what_it_allows_and_names_its_languages_for_detection() -> None:
    sent = built_by(NARROW, {"encoding": "wav/pcm", "sample_rate": 16000, "channels": 2})
    assert (sent["encoding"], sent["sample_rate"], sent["channels"]) == ("wav/pcm", 16000, 2)
    # Without a list Gladia would detect among all its languages: the policy's own are sent.
    assert sent["language_config"] == {"languages": ["en", "fr"]}


def test_the_channel_setting_caps_the_policy_file() -> None:
    policy = SessionPolicy(1, None, PolicyRules(max_channels=8))
    assert policy.rules.max_channels == 1


@pytest.mark.parametrize(
    "body",
    [
        {"realtime_processing": {"translation": True}},
        {"realtime_processing": {"named_entity_recognition": True}},
        {"realtime_processing": {"sentiment_analysis": True}},
        {"realtime_processing": {"custom_vocabulary": True}},
        {"post_processing": {"summarization": True}},
    ],
)
def test_add_ons_are_refused_until_the_policy_enables_them(body: dict[str, Any]) -> None:
    section = next(iter(body))
    switch = next(iter(body[section]))
    assert refused_by(PolicyRules(), body) == [f"{section}.{switch}"]


@pytest.mark.parametrize(
    "body",
    [
        {"realtime_processing": {"translation": False}},
        {"post_processing": {"summarization": False}},
    ],
)
def test_an_add_on_switched_off_is_always_allowed(body: dict[str, Any]) -> None:
    assert built_by(PolicyRules(), body)[next(iter(body))] == body[next(iter(body))]


def test_enabled_add_ons_pass_through_with_their_settings() -> None:
    body = {
        "realtime_processing": {
            "translation": True,
            "translation_config": {"target_languages": ["de", "wo"], "informal": True},
            "named_entity_recognition": True,
            "sentiment_analysis": True,
            "custom_vocabulary": True,
            "custom_vocabulary_config": {
                "vocabulary": ["Gladia", {"value": "Solaria", "intensity": 0.5}],
                "default_intensity": 0.4,
            },
        },
        "post_processing": {"summarization": True, "summarization_config": {"type": "concise"}},
    }
    sent = built_by(ADDONS, body)
    assert sent["realtime_processing"] == body["realtime_processing"]
    assert sent["post_processing"] == body["post_processing"]


@pytest.mark.parametrize(
    ("realtime", "fields"),
    [
        ({"translation": True}, ["realtime_processing.translation_config"]),
        (
            {"translation": True, "translation_config": {}},
            ["realtime_processing.translation_config.target_languages"],
        ),
        (
            {"translation": True, "translation_config": {"target_languages": ["en", "de", "wo"]}},
            ["realtime_processing.translation_config.target_languages"],
        ),
        (
            {"translation": True, "translation_config": {"target_languages": ["fr"]}},
            ["realtime_processing.translation_config.target_languages[0]"],
        ),
        (
            {
                "translation": True,
                "translation_config": {"target_languages": ["en"], "model": "enhanced"},
            },
            ["realtime_processing.translation_config.model"],
        ),
        (
            {"translation_config": {"target_languages": ["en"]}},
            ["realtime_processing.translation_config"],
        ),
        (
            {"custom_vocabulary": True, "custom_vocabulary_config": {"vocabulary": ["a"] * 4}},
            ["realtime_processing.custom_vocabulary_config.vocabulary"],
        ),
        (
            {"custom_vocabulary": True, "custom_vocabulary_config": {"vocabulary": ["x" * 41]}},
            ["realtime_processing.custom_vocabulary_config.vocabulary"],
        ),
        (
            {"custom_vocabulary": True, "custom_vocabulary_config": {"vocabulary": ["a b c"]}},
            ["realtime_processing.custom_vocabulary_config.vocabulary[0]"],
        ),
        (
            {
                "custom_vocabulary": True,
                "custom_vocabulary_config": {
                    "vocabulary": [{"value": "a", "pronunciations": ["b", "c"]}]
                },
            },
            ["realtime_processing.custom_vocabulary_config.vocabulary[0].pronunciations"],
        ),
        (
            {
                "custom_vocabulary": True,
                "custom_vocabulary_config": {"vocabulary": [{"intensity": 2, "url": "x"}]},
            },
            [
                "realtime_processing.custom_vocabulary_config.vocabulary[0].intensity",
                "realtime_processing.custom_vocabulary_config.vocabulary[0].url",
                "realtime_processing.custom_vocabulary_config.vocabulary[0].value",
            ],
        ),
        ({"custom_spelling": True}, ["realtime_processing.custom_spelling"]),
    ],
)
def test_add_on_settings_are_checked_against_their_caps(
    realtime: dict[str, Any], fields: list[str]
) -> None:
    assert refused_by(ADDONS, {"realtime_processing": realtime}) == fields


def test_a_summary_type_outside_the_policy_is_refused() -> None:
    body = {"post_processing": {"summarization": True, "summarization_config": {"type": "general"}}}
    assert refused_by(ADDONS, body) == ["post_processing.summarization_config.type"]


def test_vocabulary_characters_are_counted_across_entries_and_pronunciations() -> None:
    vocabulary = [{"value": "x" * 15, "pronunciations": ["y" * 15]}, "z" * 11]
    body = {
        "realtime_processing": {
            "custom_vocabulary": True,
            "custom_vocabulary_config": {"vocabulary": vocabulary},
        }
    }
    assert refused_by(ADDONS, body) == ["realtime_processing.custom_vocabulary_config.vocabulary"]


def test_whole_number_floats_count_as_integers_and_are_sent_as_integers() -> None:
    sent = built_by(PolicyRules(), {"sample_rate": 16000.0, "channels": 2.0})
    assert sent["sample_rate"] == 16000 and isinstance(sent["sample_rate"], int)
    assert sent["channels"] == 2 and isinstance(sent["channels"], int)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, 1e308])
def test_numbers_out_of_range_are_refused(value: float) -> None:
    assert refused_by(PolicyRules(), {"endpointing": value}) == ["endpointing"]


def test_the_request_id_can_be_chosen_by_the_caller() -> None:
    init = SessionPolicy(8, None).build_init_request({}, "abc123", request_id="r-1")
    assert init.request_id == "r-1"
    assert init.body["custom_metadata"]["broker_request_id"] == "r-1"


@pytest.mark.parametrize(
    ("key", "named"),
    [("", '""'), ("a.b", '"a.b"'), ("x" * 500, json.dumps("x" * 64)), ("\n", '"\\n"')],
)
def test_odd_keys_are_named_quoted_and_short(key: str, named: str) -> None:
    assert refused_fields({key: 1}) == [named]
    assert refused_fields({"messages_config": {key: True}}) == [f"messages_config.{named}"]


def test_a_whole_number_written_with_a_decimal_point_is_that_number() -> None:
    init = SessionPolicy(8, None).build_init_request({"channels": 2.0}, "subject-key")
    assert init.body["channels"] == 2 and isinstance(init.body["channels"], int)


def test_a_body_seen_before_is_checked_the_same_and_each_create_gets_its_own_body() -> None:
    policy = SessionPolicy(2, None)
    body = {"channels": 2, "language_config": {"languages": ["en"]}}
    first = policy.build_init_request(body, "abc123")
    first.body["channels"] = 99
    first.body["messages_config"]["receive_partial_transcripts"] = True
    second = policy.build_init_request(json.loads(json.dumps(body)), "def456")
    assert second.body["channels"] == 2
    assert second.body["messages_config"] == {"receive_acknowledgments": True}
    assert second.body["custom_metadata"]["broker_subject"] == "def456"
    assert second.request_id != first.request_id


@pytest.mark.parametrize(
    ("accepted", "refused"),
    [
        ({"channels": 1}, {"channels": True}),
        ({"endpointing": 0.5}, {"endpointing": float("nan")}),
        ({"endpointing": 0.5}, {"endpointing": float("inf")}),
        # orjson writes NaN as null: the two bodies would share a key.
        ({"custom_metadata": {"a": None}}, {"custom_metadata": {"a": float("nan")}}),
        ({"sample_rate": 16000}, {"sample_rate": "16000"}),
    ],
)
def test_a_body_alike_but_not_the_same_is_checked_on_its_own(
    accepted: dict[str, Any], refused: dict[str, Any]
) -> None:
    policy = SessionPolicy(2, None)
    policy.build_init_request(accepted, "abc123")
    with pytest.raises(InvalidFields):
        policy.build_init_request(refused, "abc123")
    with pytest.raises(InvalidFields):  # and a refusal is not kept either
        policy.build_init_request(refused, "abc123")
