"""BROKER_POLICY_FILE: JSON or TOML, every key known, every value within what Gladia accepts."""

import json
from pathlib import Path

import pytest

from broker.errors import SettingsError
from broker.policy.init_body import SessionPolicy
from broker.policy.rules import LANGUAGES, PolicyRules, parse_rules, rules_from_settings
from broker.settings import Settings

DOCUMENT = {
    "encodings": ["wav/pcm"],
    "sample_rates": [16000, 48000],
    "max_channels": 2,
    "languages": ["en", "fr"],
    "addons": {
        "translation": {"target_languages": ["en", "de"], "max_targets": 1},
        "named_entity_recognition": True,
        "custom_vocabulary": {"max_entries": 10},
    },
    "presets": {
        "meeting-fr": {
            "config": {"language_config": {"languages": ["fr"]}},
            "overrides": ["sample_rate"],
        }
    },
}

TOML = """
encodings = ["wav/pcm"]
max_channels = 1

[addons.summarization]
types = ["concise"]

[presets.support-en]
config = { language_config = { languages = ["en"] } }
overrides = ["messages_config"]
"""


def test_without_a_file_the_policy_is_conservative() -> None:
    rules = rules_from_settings(Settings(max_channels=4))
    assert rules == PolicyRules(max_channels=4)
    assert rules.translation is None and rules.summarization is None
    assert not rules.named_entity_recognition and not rules.sentiment_analysis
    assert rules.languages == LANGUAGES


def test_a_json_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(DOCUMENT))
    rules = rules_from_settings(Settings(policy_file=str(path)))
    assert rules.encodings == ("wav/pcm",)
    assert rules.sample_rates == (16000, 48000)
    assert rules.max_channels == 2
    assert rules.languages == {"en", "fr"}
    assert rules.translation is not None and rules.translation.max_targets == 1
    assert rules.named_entity_recognition and not rules.sentiment_analysis
    assert rules.custom_vocabulary is not None and rules.custom_vocabulary.max_entries == 10
    assert rules.presets["meeting-fr"].overrides == ("sample_rate",)
    SessionPolicy(8, None, rules)  # every preset satisfies the policy


def test_a_toml_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(TOML)
    rules = rules_from_settings(Settings(policy_file=str(path)))
    assert rules.max_channels == 1
    assert rules.summarization is not None and rules.summarization.types == ("concise",)
    assert rules.presets["support-en"].config == {"language_config": {"languages": ["en"]}}


def test_the_channel_setting_stays_the_ceiling() -> None:
    assert parse_rules({"max_channels": 8}, max_channels=2).max_channels == 2


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"encodings": ["mp3"]}, "encodings"),
        ({"encodings": []}, "encodings"),
        ({"sample_rates": [True]}, "sample_rates"),
        ({"max_channels": 9}, "max_channels"),
        ({"languages": ["klingon"]}, "languages"),
        ({"addons": {"translation": {"max_targets": 0}}}, "addons.translation.max_targets"),
        ({"addons": {"translation": {"models": ["turbo"]}}}, "addons.translation.models"),
        ({"addons": {"summarisation": {}}}, "addons.summarisation"),
        ({"addons": {"sentiment_analysis": "yes"}}, "addons.sentiment_analysis"),
        ({"presets": {"x": {"config": [], "overrides": []}}}, "presets.x.config"),
        ({"presets": {"x": {"overrides": "sample_rate"}}}, "presets.x.overrides"),
        ({"presets": {"bad name!": {}}}, "presets.bad name!"),
        ({"raw_configs": False}, "raw_configs"),
        ({"channels": 2}, "channels"),
        ([], "the file"),
    ],
)
def test_a_bad_policy_document_is_refused_naming_the_key(document: object, named: str) -> None:
    with pytest.raises(SettingsError, match="BROKER_POLICY_FILE") as raised:
        parse_rules(document)
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("name", "content"), [("policy.json", "{not json"), ("policy.toml", "= nope")]
)
def test_an_unreadable_file_is_refused(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SettingsError, match="BROKER_POLICY_FILE"):
        rules_from_settings(Settings(policy_file=str(path)))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="BROKER_POLICY_FILE"):
        rules_from_settings(Settings(policy_file=str(tmp_path / "absent.json")))


def test_a_narrowed_language_list_must_fit_the_language_cap() -> None:
    assert parse_rules({"languages": ["en", "fr", "de"]}).max_languages == 10
    many = sorted(LANGUAGES)[:12]
    assert parse_rules({"languages": many}).max_languages == 12
    rules = parse_rules({"languages": ["en", "fr", "de"], "max_languages": 2})
    with pytest.raises(SettingsError, match="max_languages"):
        SessionPolicy(8, None, rules)


def test_the_shipped_example_policy_loads_and_its_presets_build() -> None:
    example = Path(__file__).parents[2] / "policy.example.toml"
    policy = SessionPolicy.from_settings(Settings(policy_file=str(example)))
    assert sorted(policy.rules.presets) == ["meeting-fr", "support-en"]
    body = policy.build_init_request({"preset": "meeting-fr", "sample_rate": 48000}, "k").body
    assert body["sample_rate"] == 48000
    assert body["post_processing"]["summarization_config"] == {"type": "concise"}
