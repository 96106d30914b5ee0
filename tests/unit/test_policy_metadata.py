"""`model` and a client's `custom_metadata` by policy: allowed models, metadata kept beneath the
broker's own keys, bounded so that the whole fits Gladia's limit, documented as it is enforced."""

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema_rs import Draft202012Validator

from broker.errors import InvalidFields, SettingsError
from broker.policy.init_body import METADATA_MAX_NUMBER, SessionPolicy
from broker.policy.rules import PolicyRules, Preset, rules_from_settings
from broker.settings import Settings, load_settings
from broker.web.openapi import build_openapi
from tests.support.pipecat import PIPECAT_BODY

# Gladia's cap on `custom_metadata`, stringified (contract §1.2).
GLADIA_METADATA_MAX_CHARS = 2000


def policy(rules: PolicyRules | None = None) -> SessionPolicy:
    return SessionPolicy(8, None, rules)


def sent(body: object, rules: PolicyRules | None = None) -> dict[str, Any]:
    return policy(rules).build_init_request(body, "subject-key", request_id="r" * 32).body


def refused(body: object, rules: PolicyRules | None = None) -> list[str]:
    with pytest.raises(InvalidFields) as raised:
        sent(body, rules)
    return [problem.field for problem in raised.value.problems]


def messages(body: object) -> list[str]:
    with pytest.raises(InvalidFields) as raised:
        sent(body)
    return [f"{problem.field} {problem.message}" for problem in raised.value.problems]


def test_pipecats_body_passes_with_its_metadata_beneath_the_brokers() -> None:
    body = sent(PIPECAT_BODY)
    assert body["model"] == "solaria-1"
    assert body["custom_metadata"] == {
        "broker_request_id": "r" * 32,
        "broker_subject": "subject-key",
        "client": {"pipecat": "1.14.0"},
    }
    assert {key: body[key] for key in PIPECAT_BODY if key != "custom_metadata"} == {
        key: value for key, value in PIPECAT_BODY.items() if key != "custom_metadata"
    }


def test_a_body_without_metadata_sends_only_the_brokers() -> None:
    assert set(sent({})["custom_metadata"]) == {"broker_request_id", "broker_subject"}
    assert sent({"custom_metadata": {}})["custom_metadata"]["client"] == {}


def test_the_brokers_own_keys_sent_by_a_client_never_replace_the_brokers() -> None:
    spoof = {"broker_request_id": "spoofed", "broker_subject": "someone-else", "client": "x"}
    metadata = sent({"custom_metadata": spoof})["custom_metadata"]
    assert metadata["broker_request_id"] == "r" * 32
    assert metadata["broker_subject"] == "subject-key"
    assert metadata["client"] == spoof


def test_a_model_outside_the_allowed_list_is_refused_by_name() -> None:
    assert messages({"model": "solaria-2"}) == ["model must be one of solaria-1"]
    assert refused({"model": ["solaria-1"]}) == ["model"]


def test_the_setting_names_the_allowed_models() -> None:
    widened = rules_from_settings(Settings(allowed_models=("solaria-1", "solaria-2")))
    assert sent({"model": "solaria-2"}, widened)["model"] == "solaria-2"
    assert load_settings(environ={"BROKER_ALLOWED_MODELS": ""}, env_file=None).allowed_models == ()


def test_the_setting_holds_with_a_policy_file_too(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"languages": ["en"]}))
    rules = rules_from_settings(Settings(policy_file=str(policy_file), allowed_models=("x-1",)))
    assert rules.models == ("x-1",)
    assert refused({"model": "solaria-1"}, rules) == ["model"]


def test_with_no_allowed_model_a_client_may_not_name_one() -> None:
    none = rules_from_settings(Settings(allowed_models=()))
    with pytest.raises(InvalidFields) as raised:
        sent({"model": "solaria-1"}, none)
    [problem] = raised.value.problems
    assert (problem.field, problem.message) == (
        "model",
        "may not be chosen on this broker: Gladia's default is used",
    )
    assert "model" not in sent({}, none)


def test_a_preset_may_let_clients_add_metadata() -> None:
    preset = Preset("tagged", {"custom_metadata": {"team": "a"}}, ("custom_metadata",))
    rules = PolicyRules(presets={"tagged": preset})
    body = sent({"preset": "tagged", "custom_metadata": {"call": "42"}}, rules)
    assert body["custom_metadata"]["client"] == {"team": "a", "call": "42"}
    fixed = PolicyRules(presets={"fixed": Preset("fixed", {})})
    assert refused({"preset": "fixed", "custom_metadata": {"call": "42"}}, fixed) == [
        "custom_metadata.call"
    ]


def test_a_preset_whose_metadata_breaks_the_rules_stops_the_start() -> None:
    preset = Preset("deep", {"custom_metadata": {"a": {"b": 1}}})
    with pytest.raises(SettingsError, match=r"presets\.deep\.config.*custom_metadata\.a"):
        policy(PolicyRules(presets={"deep": preset}))


@pytest.mark.parametrize(
    ("metadata", "fields"),
    [
        ("user", ["custom_metadata"]),
        ([{"user": "x"}], ["custom_metadata"]),
        ({f"k{index}": index for index in range(11)}, ["custom_metadata"]),
        ({"": 1}, ['custom_metadata.""']),
        ({"k" * 41: 1}, [f"custom_metadata.{'k' * 41}"]),
        ({"user id": 1, "ok": 2}, ['custom_metadata."user id"']),
        ({"nested": {"a": 1}}, ["custom_metadata.nested"]),
        ({"list": [1]}, ["custom_metadata.list"]),
        ({"long": "x" * 65}, ["custom_metadata.long"]),
        ({"line": "a\nb"}, ["custom_metadata.line"]),
        ({"lone": "\ud800"}, ["custom_metadata.lone"]),
        ({"big": METADATA_MAX_NUMBER + 1}, ["custom_metadata.big"]),
        ({"huge": 10**400}, ["custom_metadata.huge"]),
        ({"nan": float("nan")}, ["custom_metadata.nan"]),
        ({"inf": float("-inf")}, ["custom_metadata.inf"]),
    ],
)
def test_metadata_outside_the_bounds_is_refused_naming_the_entry(
    metadata: object, fields: list[str]
) -> None:
    assert refused({"custom_metadata": metadata}) == fields


def test_metadata_at_the_bounds_is_kept_exactly() -> None:
    metadata = {
        "s": "x" * 64,
        "n": -METADATA_MAX_NUMBER,
        "f": 0.5,
        "t": True,
        "z": None,
        "K.e-y_0": "é中🎙",
    }
    assert sent({"custom_metadata": metadata})["custom_metadata"]["client"] == metadata


def utf16_length(text: str) -> int:
    """What JavaScript's `length` says of a string (Gladia's own count)."""
    return len(text.encode("utf-16-le")) // 2


def test_the_largest_metadata_a_client_may_send_fits_gladias_limit() -> None:
    # Each character of a value costs 2 UTF-16 units when stringified: `"` is escaped as `\"`,
    # an astral character is a surrogate pair; keys may only be ASCII.
    for worst in ('"', "\\", "🎙"):
        metadata = {f"{index}".rjust(40, "k"): worst * 64 for index in range(10)}
        gladia_metadata = sent({"custom_metadata": metadata})["custom_metadata"]
        stringified = json.dumps(gladia_metadata, ensure_ascii=False, separators=(",", ":"))
        assert utf16_length(stringified) <= GLADIA_METADATA_MAX_CHARS


METADATA_SCHEMA = build_openapi(Settings())["components"]["schemas"]["CreateSessionRequest"][
    "properties"
]["custom_metadata"]
short_texts = st.text(max_size=66) | st.text(alphabet='ab"\\\x00\x1f\n', max_size=3)
numbers = st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.floats(-1e16, 1e16)
scalars = st.none() | st.booleans() | numbers | short_texts
valid_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-METADATA_MAX_NUMBER, METADATA_MAX_NUMBER)
    | st.floats(-1e15, 1e15)
    | st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=64)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(), inner, max_size=2),
)
valid_keys = st.text(alphabet="aZ0_.-", min_size=1, max_size=40)
keys = st.text(alphabet="aZ0_.-", max_size=42) | st.text(max_size=3)
# Half within the bounds, half near them, so that both answers are common (checked below).
metadata_values = st.dictionaries(valid_keys, valid_scalars, max_size=10) | st.dictionaries(
    keys, valid_scalars | scalars | json_values, max_size=11
)


def test_the_openapi_document_accepts_exactly_the_metadata_the_policy_accepts() -> None:
    """Lone surrogates aside (refused by the policy, never drawn: JSON escapes only)."""
    validator = Draft202012Validator(METADATA_SCHEMA)
    answers: Counter[bool] = Counter()

    @settings(max_examples=300, database=None)
    @given(metadata=metadata_values)
    def agree(metadata: dict[str, Any]) -> None:
        documented = validator.is_valid(metadata)
        try:
            sent({"custom_metadata": metadata})
            accepted = True
        except InvalidFields:
            accepted = False
        assert documented == accepted, metadata
        answers[accepted] += 1

    agree()
    assert answers[True] >= 50 and answers[False] >= 50, answers


def test_the_openapi_document_lists_only_the_allowed_models() -> None:
    def model_schema(rules: PolicyRules) -> object:
        properties = build_openapi(Settings(), rules)["components"]["schemas"][
            "CreateSessionRequest"
        ]["properties"]
        return properties.get("model")

    assert model_schema(PolicyRules()) == {"enum": ["solaria-1"]}
    assert model_schema(PolicyRules(models=())) is None  # closed: no model at all
