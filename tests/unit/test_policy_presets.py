"""Named presets: a configuration ops wrote, plus the overrides it lets clients make."""

from types import MappingProxyType
from typing import Any

import pytest

from broker.errors import InvalidFields, SettingsError
from broker.policy.init_body import SessionPolicy
from broker.policy.rules import PolicyRules, Preset, SummarizationRule

MEETING_FR = Preset(
    name="meeting-fr",
    config={
        "encoding": "wav/pcm",
        "sample_rate": 16000,
        "language_config": {"languages": ["fr"], "code_switching": False},
        "post_processing": {"summarization": True, "summarization_config": {"type": "concise"}},
        "messages_config": {"receive_partial_transcripts": False},
    },
    overrides=(
        "sample_rate",
        "messages_config",
        "language_config.code_switching",
        "post_processing.summarization",
    ),
)


def rules(*presets: Preset, raw_configs: bool = True) -> PolicyRules:
    return PolicyRules(
        summarization=SummarizationRule(),
        presets=MappingProxyType({preset.name: preset for preset in presets}),
        raw_configs=raw_configs,
    )


def build(body: object, policy_rules: PolicyRules | None = None) -> dict[str, Any]:
    policy = SessionPolicy(8, None, policy_rules or rules(MEETING_FR))
    sent: dict[str, Any] = policy.build_init_request(body, "abc123").body
    return sent


def refused(body: object, policy_rules: PolicyRules | None = None) -> list[str]:
    with pytest.raises(InvalidFields) as raised:
        build(body, policy_rules)
    return [problem.field for problem in raised.value.problems]


def test_a_preset_alone_gives_its_configuration() -> None:
    sent = build({"preset": "meeting-fr"})
    assert sent["language_config"] == {"languages": ["fr"], "code_switching": False}
    assert sent["post_processing"]["summarization_config"] == {"type": "concise"}
    assert sent["messages_config"] == {
        "receive_partial_transcripts": False,
        "receive_acknowledgments": True,
    }
    assert "preset" not in sent


def test_allowed_overrides_are_laid_over_the_preset_key_by_key() -> None:
    sent = build(
        {
            "preset": "meeting-fr",
            "sample_rate": 48000,
            "messages_config": {"receive_partial_transcripts": True},
            "language_config": {"code_switching": True},
        }
    )
    assert sent["sample_rate"] == 48000
    assert sent["messages_config"]["receive_partial_transcripts"] is True
    # Only the allowed leaf changed; the preset's language stays.
    assert sent["language_config"] == {"languages": ["fr"], "code_switching": True}


def test_overrides_the_preset_does_not_allow_are_refused_by_path() -> None:
    body = {
        "preset": "meeting-fr",
        "encoding": "wav/ulaw",
        "language_config": {"languages": ["en"]},
    }
    assert refused(body) == ["encoding", "language_config.languages"]


def test_an_allowed_override_still_has_to_satisfy_the_policy() -> None:
    assert refused({"preset": "meeting-fr", "sample_rate": 12345}) == ["sample_rate"]


def test_switching_an_add_on_off_drops_the_presets_settings_for_it() -> None:
    sent = build({"preset": "meeting-fr", "post_processing": {"summarization": False}})
    assert sent["post_processing"] == {"summarization": False}


@pytest.mark.parametrize("field", ["callback", "callback_config"])
def test_broker_owned_fields_are_refused_with_a_preset_too(field: str) -> None:
    assert refused({"preset": "meeting-fr", field: {"url": "https://evil.example"}}) == [field]


@pytest.mark.parametrize("name", ["nope", 7, None, ["meeting-fr"]])
def test_an_unknown_preset_is_refused_by_name(name: object) -> None:
    assert refused({"preset": name}) == ["preset"]


def test_a_preset_only_broker_requires_a_preset() -> None:
    only = rules(MEETING_FR, raw_configs=False)
    assert refused({"sample_rate": 16000}, only) == ["preset"]
    assert build({"preset": "meeting-fr"}, only)["sample_rate"] == 16000


def test_deeply_nested_overrides_are_refused_without_recursing_forever() -> None:
    nested: dict[str, Any] = {}
    for _ in range(500):
        nested = {"x": nested}
    assert refused({"preset": "meeting-fr", "messages_config": nested}) != []


def test_a_preset_that_breaks_the_policy_stops_the_broker_from_starting() -> None:
    greedy = Preset(name="greedy", config={"realtime_processing": {"sentiment_analysis": True}})
    with pytest.raises(SettingsError, match=r"presets\.greedy.*sentiment_analysis"):
        SessionPolicy(8, None, rules(greedy))


def test_a_preset_cannot_allow_overriding_a_field_clients_may_not_send() -> None:
    sneaky = Preset(name="sneaky", config={}, overrides=("callback_config.url",))
    with pytest.raises(SettingsError, match=r"callback_config\.url"):
        SessionPolicy(8, None, rules(sneaky))
