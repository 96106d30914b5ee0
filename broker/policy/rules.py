"""What ops allow clients to ask Gladia for: formats, languages, add-ons with caps, presets.

The rules come from settings (`BROKER_MAX_CHANNELS`, `BROKER_ALLOWED_MODELS`, `GLADIA_REGION`)
and, when `BROKER_POLICY_FILE` names one, from a JSON or TOML file. Everything a file does not
mention keeps the conservative default: every audio format and language Gladia accepts, no
billable add-on.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from broker.errors import SettingsError
from broker.settings import GLADIA_REGIONS, Settings

# Gladia Live v2's own limits (contract §1.2); a policy can narrow them, never widen them.
ENCODINGS = ("wav/pcm", "wav/alaw", "wav/ulaw")
BIT_DEPTHS = (8, 16, 24, 32)
SAMPLE_RATES = (8000, 16000, 32000, 44100, 48000)
GLADIA_MAX_CHANNELS = 8
LANGUAGES = frozenset(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw "
    "he hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt "
    "my ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl "
    "tr tt uk ur uz vi yi yo zh".split()
)
TRANSLATION_LANGUAGES = LANGUAGES | {"wo"}
TRANSLATION_MODELS = ("base", "batch", "enhanced")
SUMMARY_TYPES = ("general", "bullet_points", "concise")
MAX_LANGUAGES = 10
# The models of Gladia's contract (§1.2); BROKER_ALLOWED_MODELS may name others Gladia adds.
GLADIA_MODELS = ("solaria-1",)


@dataclass(frozen=True)
class TranslationRule:
    """Real-time translation: which targets, how many at once, which models."""

    target_languages: frozenset[str] = TRANSLATION_LANGUAGES
    max_targets: int = 2
    models: tuple[str, ...] = ("base",)
    max_context_chars: int = 500


@dataclass(frozen=True)
class SummarizationRule:
    types: tuple[str, ...] = SUMMARY_TYPES


@dataclass(frozen=True)
class VocabularyRule:
    """Custom vocabulary, capped (Gladia's older docs: 100 entries, 10k characters, 5 words)."""

    max_entries: int = 100
    max_total_chars: int = 10_000
    max_words_per_entry: int = 5
    max_pronunciations: int = 5


@dataclass(frozen=True)
class Preset:
    """A named configuration; `overrides` are the dotted field paths a client may change."""

    name: str
    config: Mapping[str, Any]
    overrides: tuple[str, ...] = ()

    def allows(self, path: str) -> bool:
        return any(path == allowed or path.startswith(allowed + ".") for allowed in self.overrides)


@dataclass(frozen=True)
class PolicyRules:
    """Every rule a create body is checked against; the upstream body always satisfies them."""

    encodings: tuple[str, ...] = ENCODINGS
    bit_depths: tuple[int, ...] = BIT_DEPTHS
    sample_rates: tuple[int, ...] = SAMPLE_RATES
    max_channels: int = GLADIA_MAX_CHANNELS
    languages: frozenset[str] = LANGUAGES
    max_languages: int = MAX_LANGUAGES
    regions: tuple[str, ...] = GLADIA_REGIONS
    # The `model` values a client may name; empty: none, Gladia's default is used.
    models: tuple[str, ...] = GLADIA_MODELS
    translation: TranslationRule | None = None
    named_entity_recognition: bool = False
    sentiment_analysis: bool = False
    summarization: SummarizationRule | None = None
    custom_vocabulary: VocabularyRule | None = None
    presets: Mapping[str, Preset] = field(default_factory=lambda: MappingProxyType({}))
    # False: clients may only name a preset (plus its overrides), never a config of their own.
    raw_configs: bool = True


def rules_from_settings(settings: Settings) -> PolicyRules:
    """The rules of `BROKER_POLICY_FILE`, within `BROKER_MAX_CHANNELS`; raises SettingsError."""
    if not settings.policy_file:
        return PolicyRules(max_channels=settings.max_channels, models=settings.allowed_models)
    path = Path(settings.policy_file)
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SettingsError(
            f"BROKER_POLICY_FILE cannot be read as {path.suffix.lstrip('.') or 'JSON'}: "
            f"{type(exc).__name__}"
        ) from None
    return parse_rules(document, settings.max_channels, settings.allowed_models)


def parse_rules(
    document: object,
    max_channels: int = GLADIA_MAX_CHANNELS,
    models: tuple[str, ...] = GLADIA_MODELS,
) -> PolicyRules:
    """Rules from a policy document (a parsed JSON or TOML object); raises SettingsError."""
    reader = _Document(document)
    languages = frozenset(reader.subset("languages", tuple(sorted(LANGUAGES))))
    # A narrowed list is sent whole when a client names none, so it must fit the cap.
    default_max = max(MAX_LANGUAGES, len(languages)) if languages < LANGUAGES else MAX_LANGUAGES
    rules = PolicyRules(
        encodings=reader.subset("encodings", ENCODINGS),
        bit_depths=reader.subset("bit_depths", BIT_DEPTHS),
        sample_rates=reader.subset("sample_rates", SAMPLE_RATES),
        max_channels=min(max_channels, reader.integer("max_channels", max_channels, 1, 8)),
        languages=languages,
        max_languages=reader.integer("max_languages", default_max, 1, len(LANGUAGES)),
        regions=reader.subset("regions", GLADIA_REGIONS),
        models=models,
        raw_configs=reader.boolean("raw_configs", True),
        **_addons(reader.section("addons")),
    )
    presets = _presets(reader.section("presets"))
    reader.finish()
    rules = replace(rules, presets=MappingProxyType(presets))
    if not rules.raw_configs and not presets:
        raise SettingsError("BROKER_POLICY_FILE: raw_configs = false needs at least one preset")
    return rules


def _addons(reader: _Document) -> dict[str, Any]:
    addons: dict[str, Any] = {}
    translation = reader.section("translation", optional=True)
    if translation is not None:
        default = TranslationRule()
        addons["translation"] = TranslationRule(
            target_languages=frozenset(
                translation.subset("target_languages", tuple(sorted(TRANSLATION_LANGUAGES)))
            ),
            max_targets=translation.integer("max_targets", default.max_targets, 1, 20),
            models=translation.subset("models", TRANSLATION_MODELS, default.models),
            max_context_chars=translation.integer(
                "max_context_chars", default.max_context_chars, 0, 10_000
            ),
        )
        translation.finish()
    summarization = reader.section("summarization", optional=True)
    if summarization is not None:
        addons["summarization"] = SummarizationRule(
            types=summarization.subset("types", SUMMARY_TYPES)
        )
        summarization.finish()
    vocabulary = reader.section("custom_vocabulary", optional=True)
    if vocabulary is not None:
        default_vocabulary = VocabularyRule()
        addons["custom_vocabulary"] = VocabularyRule(
            max_entries=vocabulary.integer("max_entries", default_vocabulary.max_entries, 1, 1000),
            max_total_chars=vocabulary.integer(
                "max_total_chars", default_vocabulary.max_total_chars, 1, 100_000
            ),
            max_words_per_entry=vocabulary.integer(
                "max_words_per_entry", default_vocabulary.max_words_per_entry, 1, 50
            ),
            max_pronunciations=vocabulary.integer(
                "max_pronunciations", default_vocabulary.max_pronunciations, 0, 50
            ),
        )
        vocabulary.finish()
    addons["named_entity_recognition"] = reader.boolean("named_entity_recognition", False)
    addons["sentiment_analysis"] = reader.boolean("sentiment_analysis", False)
    reader.finish()
    return addons


def _presets(reader: _Document) -> dict[str, Preset]:
    presets = {}
    for name in list(reader.keys()):
        entry = reader.section(name)
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
            raise SettingsError(f"BROKER_POLICY_FILE: presets.{name} is not a valid preset name")
        overrides = entry.strings("overrides")
        config = entry.raw("config", {})
        if not isinstance(config, dict):
            raise SettingsError(f"BROKER_POLICY_FILE: presets.{name}.config must be an object")
        entry.finish()
        presets[name] = Preset(name=name, config=config, overrides=overrides)
    reader.finish()
    return presets


class _Document:
    """Reads one object of the policy file, naming any key it does not know."""

    def __init__(self, value: object, prefix: str = "") -> None:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise SettingsError(f"BROKER_POLICY_FILE: {prefix.rstrip('.') or 'the file'} "
                                "must be an object")  # fmt: skip
        self._value: dict[str, Any] = dict(value)
        self._prefix = prefix

    def keys(self) -> list[str]:
        return list(self._value)

    def _fail(self, key: str, message: str) -> SettingsError:
        return SettingsError(f"BROKER_POLICY_FILE: {self._prefix}{key} {message}")

    def raw(self, key: str, default: Any) -> Any:
        return self._value.pop(key, default)

    def section(self, key: str, optional: bool = False) -> Any:
        if optional and key not in self._value:
            return None
        return _Document(self._value.pop(key, None), f"{self._prefix}{key}.")

    def boolean(self, key: str, default: bool) -> bool:
        value = self._value.pop(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, "must be true or false")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._value.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(key, f"must be an integer from {low} to {high}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._value.pop(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._fail(key, "must be a list of strings")
        return tuple(value)

    def subset(
        self, key: str, allowed: tuple[Any, ...], default: tuple[Any, ...] | None = None
    ) -> tuple[Any, ...]:
        """A non-empty list drawn from `allowed` (Gladia's own values)."""
        if key not in self._value:
            return default if default is not None else allowed
        value = self._value.pop(key)
        if not isinstance(value, list) or not value:
            raise self._fail(key, "must be a non-empty list")
        unknown = [
            item for item in value if isinstance(item, bool) or item not in allowed
        ]  # fmt: skip
        if unknown:
            raise self._fail(key, f"holds values Gladia does not accept: {unknown[:5]}")
        return tuple(dict.fromkeys(value))

    def finish(self) -> None:
        if self._value:
            raise self._fail(sorted(self._value)[0], "is not a policy setting")
