"""A client's create request to the exact Gladia init body, or a refusal naming the field."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from broker.errors import FieldProblem, InvalidFields, SettingsError
from broker.policy.rules import (
    BIT_DEPTHS,
    ENCODINGS,
    LANGUAGES,
    MAX_LANGUAGES,
    SAMPLE_RATES,
    PolicyRules,
    Preset,
    rules_from_settings,
)
from broker.settings import Settings

__all__ = [
    "BIT_DEPTHS",
    "BROKER_OWNED_FIELDS",
    "CLIENT_FIELDS",
    "CLIENT_METADATA_KEY",
    "ENCODINGS",
    "LANGUAGES",
    "MAX_LANGUAGES",
    "SAMPLE_RATES",
    "InitRequest",
    "SessionPolicy",
]

MESSAGE_FLAGS = (
    "receive_partial_transcripts",
    "receive_final_transcripts",
    "receive_speech_events",
    "receive_pre_processing_events",
    "receive_realtime_processing_events",
    "receive_post_processing_events",
    "receive_acknowledgments",
    "receive_errors",
    "receive_lifecycle_events",
)
# Set by the broker alone: a client that could set them could redirect results or spoof records.
BROKER_OWNED_FIELDS = ("callback", "callback_config")
CLIENT_FIELDS = (
    "model",
    "encoding",
    "bit_depth",
    "sample_rate",
    "channels",
    "endpointing",
    "maximum_duration_without_endpointing",
    "language_config",
    "messages_config",
    "realtime_processing",
    "post_processing",
    "custom_metadata",
    "region",
)
PRESET_FIELD = "preset"
# `custom_metadata` is shared: the broker's keys at its top level, a client's object under
# `client`, so no key a client sends can stand for the broker's (reconciliation matches the
# top-level `broker_request_id`).
CLIENT_METADATA_KEY = "client"
# A client's metadata is flat and small, so the whole stays within Gladia's 2000 characters
# stringified: 10 entries of a 40-character key and a 64-character value (2 UTF-16 units per
# character at worst: a quote, a backslash, an astral character), and the broker's own keys.
METADATA_MAX_ENTRIES = 10
METADATA_MAX_KEY = 40
METADATA_MAX_TEXT = 64
# JavaScript's safe integers: Gladia reads the JSON with it.
METADATA_MAX_NUMBER = 2**53 - 1
# Characters a key may not hold, and those a text value may not (JSON escapes them 6 times over).
METADATA_KEY_BARRED = r"[^A-Za-z0-9_.-]"
METADATA_TEXT_BARRED = r"[\x00-\x1f]"
_METADATA_KEY_BARRED = re.compile(METADATA_KEY_BARRED)
_METADATA_TEXT_BARRED = re.compile(METADATA_TEXT_BARRED)
# An add-on's switch and its configuration: the configuration only travels with the switch on.
_ADDON_PAIRS = (
    ("realtime_processing", "translation", "translation_config", True),
    ("realtime_processing", "custom_vocabulary", "custom_vocabulary_config", True),
    ("post_processing", "summarization", "summarization_config", False),
)
# Preset overrides deeper than this are leaves: no client field is nested further.
_MAX_OVERRIDE_DEPTH = 6
_MAX_FIELD_NAME = 64

Reader = Callable[[str, Any], Any]


@dataclass(frozen=True)
class InitRequest:
    """What the broker sends to `POST /v2/live` for one create."""

    body: dict[str, Any]
    region: str | None
    request_id: str

    @property
    def messages_config(self) -> dict[str, bool]:
        config: dict[str, bool] = self.body["messages_config"]
        return config


class _Fields:
    """Collects field problems while a body is read, so one answer names them all."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def refuse(self, field: str, message: str) -> None:
        self.problems.append(FieldProblem(field, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidFields(
                "The session configuration has fields that are not allowed or not valid",
                problems=tuple(self.problems),
            )

    def choice(self, field: str, value: object, allowed: tuple[Any, ...]) -> Any:
        # bool is an int in Python; `true` is never a valid sample rate. 16.0 is JSON's 16.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, str | int) or value not in allowed:
            self.refuse(field, f"must be one of {', '.join(str(item) for item in allowed)}")
        return value

    def boolean(self, field: str, value: object) -> bool:
        if not isinstance(value, bool):
            self.refuse(field, "must be true or false")
        return bool(value)

    def number(self, field: str, value: object, low: float, high: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            self.refuse(field, f"must be a number from {low:g} to {high:g}")
            return low
        return value

    def integer(self, field: str, value: object, low: int, high: int) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 2.0 is 2
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.refuse(field, f"must be an integer from {low} to {high}")
            return low
        return value

    def text(self, field: str, value: object, max_chars: int) -> str:
        if not isinstance(value, str) or len(value) > max_chars:
            self.refuse(field, f"must be a string of at most {max_chars} characters")
            return ""
        return value

    def mapping(self, field: str, value: object) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.refuse(field, "must be an object")
            return {}
        return value

    def language(self, field: str, value: object, allowed: frozenset[str]) -> str:
        if not isinstance(value, str) or value not in allowed:
            self.refuse(field, "must be a language code this broker allows")
            return ""
        return value

    def codes(
        self, field: str, value: object, allowed: frozenset[str], low: int, high: int
    ) -> list[str]:
        """A list of `low`..`high` distinct language codes drawn from `allowed`."""
        if not isinstance(value, list) or not low <= len(value) <= high:
            self.refuse(field, f"must be a list of {low} to {high} language codes")
            return []
        seen: set[str] = set()
        for index, code in enumerate(value):
            if not self.language(f"{field}[{index}]", code, allowed):
                continue
            if code in seen:
                self.refuse(f"{field}[{index}]", "repeats a language")
            else:
                seen.add(code)
        return list(value)

    def read_object(
        self, prefix: str, value: Mapping[str, Any], readers: Mapping[str, Reader]
    ) -> dict[str, Any]:
        """Read every allowed key of an object; any other key is refused by name."""
        result: dict[str, Any] = {}
        for key, item in value.items():
            field = f"{prefix}{_field_name(key)}"
            if key in BROKER_OWNED_FIELDS and not prefix:
                self.refuse(field, "is set by the broker and may not be sent")
            elif key not in readers:
                self.refuse(field, "is not an allowed field")
            else:
                result[key] = readers[key](field, item)
        return result


# Create bodies whose checked configuration is kept (an app sends the same few), and the
# longest body kept: a body is its own key.
CHECKED_BODIES_CACHED = 256
CHECKED_BODY_MAX_BYTES = 4096

# (subject key, request id) -> the `callback` and `callback_config` fields of a create.
CallbackFields = Callable[[str, str], dict[str, Any]]


class SessionPolicy:
    """Which Gladia session configurations clients may ask for."""

    def __init__(
        self,
        max_channels: int,
        default_region: str | None,
        rules: PolicyRules | None = None,
        callback_fields: CallbackFields | None = None,
    ) -> None:
        self._callback_fields = callback_fields
        rules = rules or PolicyRules()
        self.rules = replace(rules, max_channels=min(rules.max_channels, max_channels))
        self._default_region = default_region
        narrowed = self.rules.languages < LANGUAGES
        if narrowed and len(self.rules.languages) > self.rules.max_languages:
            raise SettingsError(
                "BROKER_POLICY_FILE: max_languages must be at least the number of languages "
                f"({len(self.rules.languages)}): a session without a list detects among all of them"
            )
        for preset in self.rules.presets.values():
            self._check_preset(preset)
        self._checked_bodies: dict[bytes, dict[str, Any]] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, callback_fields: CallbackFields | None = None
    ) -> SessionPolicy:
        """The policy the settings (and `BROKER_POLICY_FILE`) describe; raises SettingsError."""
        return cls(
            settings.max_channels,
            settings.gladia_region,
            rules_from_settings(settings),
            callback_fields,
        )

    def build_init_request(
        self, client_body: object, subject_key: str, request_id: str | None = None
    ) -> InitRequest:
        """Map an untrusted create body to the Gladia init body; raises InvalidFields."""
        config = dict(self._checked(client_body))
        region = config.pop("region", None) or self._default_region
        request_id = request_id or uuid.uuid4().hex
        messages_config = {**config.pop("messages_config", {}), "receive_acknowledgments": True}
        callback = self._callback_fields(subject_key, request_id) if self._callback_fields else {}
        metadata: dict[str, Any] = {"broker_request_id": request_id, "broker_subject": subject_key}
        if "custom_metadata" in config:
            metadata[CLIENT_METADATA_KEY] = config.pop("custom_metadata")
        gladia_body = {
            **config,
            "messages_config": messages_config,
            **callback,
            "custom_metadata": metadata,
        }
        return InitRequest(body=gladia_body, region=region, request_id=request_id)

    def _checked(self, client_body: object) -> dict[str, Any]:
        """`client_config(client_body)`, kept for bodies seen before. The policy is a function of
        the body alone (its rules are fixed when the broker starts), and a body that serialises
        to the same JSON is the same body: orjson writes 1, 1.0 and true apart, but NaN and the
        infinities as null, so a body with a null is never kept. What is kept is never changed:
        the caller copies what it changes."""
        try:
            key = orjson.dumps(client_body)
        except (orjson.JSONEncodeError, TypeError):  # an integer beyond 64 bits, say
            return self.client_config(client_body)
        if b"null" in key:
            return self.client_config(client_body)
        config = self._checked_bodies.get(key)
        if config is None:
            config = self.client_config(client_body)  # a refusal raises: never kept
            if len(key) <= CHECKED_BODY_MAX_BYTES:
                if len(self._checked_bodies) >= CHECKED_BODIES_CACHED:
                    del self._checked_bodies[next(iter(self._checked_bodies))]
                self._checked_bodies[key] = config
        return config

    def client_config(self, client_body: object) -> dict[str, Any]:
        """The checked configuration a create body asks for, its preset applied."""
        fields = _Fields()
        body = fields.mapping("body", client_body)
        fields.raise_if_any()
        requested: dict[str, Any]
        from_client: Mapping[str, Any]
        if PRESET_FIELD in body:
            requested, from_client = self._apply_preset(fields, body)
        elif not self.rules.raw_configs:
            names = ", ".join(sorted(self.rules.presets))
            fields.refuse(PRESET_FIELD, f"is required: this broker creates sessions from {names}")
            requested, from_client = {}, {}
        else:
            requested, from_client = dict(body), body
        config = self._read(fields, requested, from_client)
        fields.raise_if_any()
        return config

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A configuration checked against every rule (presets are, at start); raises."""
        fields = _Fields()
        checked = self._read(fields, dict(config), config)
        fields.raise_if_any()
        return checked

    def _check_preset(self, preset: Preset) -> None:
        for path in preset.overrides:
            if path.split(".")[0] not in CLIENT_FIELDS:
                raise SettingsError(
                    f"BROKER_POLICY_FILE: presets.{preset.name}.overrides names {path!r}, "
                    "which is not a field clients may send"
                )
        try:
            self.check_config(preset.config)
        except InvalidFields as exc:
            named = "; ".join(f"{p.field} {p.message}" for p in exc.problems)
            raise SettingsError(
                f"BROKER_POLICY_FILE: presets.{preset.name}.config breaks the policy: {named}"
            ) from None

    def _apply_preset(
        self, fields: _Fields, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        name = body[PRESET_FIELD]
        preset = self.rules.presets.get(name) if isinstance(name, str) else None
        if preset is None:
            known = ", ".join(sorted(self.rules.presets)) or "none are configured"
            fields.refuse(PRESET_FIELD, f"must name a preset of this broker ({known})")
            return {}, {}
        overrides = {key: value for key, value in body.items() if key != PRESET_FIELD}
        for key in [key for key in overrides if key in BROKER_OWNED_FIELDS]:
            fields.refuse(key, "is set by the broker and may not be sent")
            del overrides[key]
        for path in _leaf_paths(overrides):
            if not preset.allows(path):
                fields.refuse(path, f"is not a field the preset {name!r} lets clients change")
        return _merged(preset.config, overrides), overrides

    def _read(
        self, fields: _Fields, requested: dict[str, Any], from_client: Mapping[str, Any]
    ) -> dict[str, Any]:
        config = fields.read_object("", requested, self._readers(fields))
        self._settle_audio_format(fields, config)
        self._settle_addons(fields, config, from_client)
        self._settle_languages(config)
        return config

    def _readers(self, fields: _Fields) -> dict[str, Reader]:
        rules = self.rules
        return {
            "model": lambda field, value: self._model(fields, field, value),
            "encoding": lambda field, value: fields.choice(field, value, rules.encodings),
            "bit_depth": lambda field, value: fields.choice(field, value, rules.bit_depths),
            "sample_rate": lambda field, value: fields.choice(field, value, rules.sample_rates),
            "channels": lambda field, value: fields.integer(field, value, 1, rules.max_channels),
            "endpointing": lambda field, value: fields.number(field, value, 0.01, 10),
            "maximum_duration_without_endpointing": lambda field, value: fields.number(
                field, value, 5, 60
            ),
            "language_config": lambda field, value: self._language_config(fields, field, value),
            "messages_config": lambda field, value: self._messages_config(fields, field, value),
            "realtime_processing": lambda field, value: self._realtime(fields, field, value),
            "post_processing": lambda field, value: self._post_processing(fields, field, value),
            "custom_metadata": lambda field, value: _custom_metadata(fields, field, value),
            "region": lambda field, value: fields.choice(field, value, rules.regions),
        }

    def _model(self, fields: _Fields, field: str, value: object) -> Any:
        if not self.rules.models:
            fields.refuse(field, "may not be chosen on this broker: Gladia's default is used")
            return value
        return fields.choice(field, value, self.rules.models)

    def _language_config(self, fields: _Fields, field: str, value: object) -> dict[str, Any]:
        rules = self.rules
        readers: dict[str, Reader] = {
            "languages": lambda name, item: fields.codes(
                name, item, rules.languages, 0, rules.max_languages
            ),
            "code_switching": fields.boolean,
        }
        return fields.read_object(f"{field}.", fields.mapping(field, value), readers)

    def _messages_config(self, fields: _Fields, field: str, value: object) -> dict[str, bool]:
        readers: dict[str, Reader] = dict.fromkeys(MESSAGE_FLAGS, fields.boolean)
        config = fields.read_object(f"{field}.", fields.mapping(field, value), readers)
        if config.get("receive_acknowledgments") is False:
            fields.refuse(
                f"{field}.receive_acknowledgments",
                "must be true: reconnecting without losing audio needs acknowledgments",
            )
        return config

    def _realtime(self, fields: _Fields, field: str, value: object) -> dict[str, Any]:
        rules = self.rules

        def switch(enabled: bool) -> Reader:
            return lambda name, item: self._addon_switch(fields, name, item, enabled)

        readers: dict[str, Reader] = {
            "translation": switch(rules.translation is not None),
            "translation_config": lambda name, item: self._translation(fields, name, item),
            "named_entity_recognition": switch(rules.named_entity_recognition),
            "sentiment_analysis": switch(rules.sentiment_analysis),
            "custom_vocabulary": switch(rules.custom_vocabulary is not None),
            "custom_vocabulary_config": lambda name, item: self._vocabulary(fields, name, item),
        }
        return fields.read_object(f"{field}.", fields.mapping(field, value), readers)

    def _post_processing(self, fields: _Fields, field: str, value: object) -> dict[str, Any]:
        rule = self.rules.summarization

        def summary_config(name: str, item: object) -> dict[str, Any]:
            if rule is None:
                fields.refuse(name, "summarization is not enabled on this broker")
                return {}
            readers: dict[str, Reader] = {
                "type": lambda key, kind: fields.choice(key, kind, rule.types),
            }
            return fields.read_object(f"{name}.", fields.mapping(name, item), readers)

        readers: dict[str, Reader] = {
            "summarization": lambda name, item: self._addon_switch(
                fields, name, item, rule is not None
            ),
            "summarization_config": summary_config,
        }
        return fields.read_object(f"{field}.", fields.mapping(field, value), readers)

    @staticmethod
    def _addon_switch(fields: _Fields, field: str, value: object, enabled: bool) -> bool:
        switched_on = fields.boolean(field, value)
        if switched_on and not enabled:
            fields.refuse(field, "is an add-on that is not enabled on this broker")
        return switched_on

    def _translation(self, fields: _Fields, field: str, value: object) -> dict[str, Any]:
        rule = self.rules.translation
        if rule is None:
            fields.refuse(field, "translation is not enabled on this broker")
            return {}
        readers: dict[str, Reader] = {
            "target_languages": lambda name, item: fields.codes(
                name, item, rule.target_languages, 1, rule.max_targets
            ),
            "model": lambda name, item: fields.choice(name, item, rule.models),
            "match_original_utterances": fields.boolean,
            "lipsync": fields.boolean,
            "context_adaptation": fields.boolean,
            "informal": fields.boolean,
            "context": lambda name, item: fields.text(name, item, rule.max_context_chars),
        }
        config = fields.read_object(f"{field}.", fields.mapping(field, value), readers)
        if isinstance(value, dict) and "target_languages" not in config:
            fields.refuse(f"{field}.target_languages", "is required")
        return config

    def _vocabulary(self, fields: _Fields, field: str, value: object) -> dict[str, Any]:
        rule = self.rules.custom_vocabulary
        if rule is None:
            fields.refuse(field, "custom vocabulary is not enabled on this broker")
            return {}
        total_chars = 0

        def word(name: str, item: object) -> str:
            nonlocal total_chars
            if not isinstance(item, str) or not item.strip():
                fields.refuse(name, "must be a non-empty string")
                return ""
            if len(item.split()) > rule.max_words_per_entry:
                fields.refuse(name, f"must have at most {rule.max_words_per_entry} words")
            total_chars += len(item)
            return item

        def pronunciations(name: str, item: object) -> list[str]:
            if not isinstance(item, list) or len(item) > rule.max_pronunciations:
                fields.refuse(name, f"must be a list of at most {rule.max_pronunciations} strings")
                return []
            return [word(f"{name}[{index}]", entry) for index, entry in enumerate(item)]

        def entry(name: str, item: object) -> Any:
            if isinstance(item, str):
                return word(name, item)
            readers: dict[str, Reader] = {
                "value": word,
                "intensity": lambda key, number: fields.number(key, number, 0, 1),
                "pronunciations": pronunciations,
                "language": lambda key, code: fields.language(key, code, LANGUAGES),
            }
            read = fields.read_object(f"{name}.", fields.mapping(name, item), readers)
            if isinstance(item, dict) and "value" not in read:
                fields.refuse(f"{name}.value", "is required")
            return read

        def vocabulary(name: str, item: object) -> list[Any]:
            if not isinstance(item, list) or not 1 <= len(item) <= rule.max_entries:
                fields.refuse(name, f"must be a list of 1 to {rule.max_entries} entries")
                return []
            entries = [entry(f"{name}[{index}]", element) for index, element in enumerate(item)]
            if total_chars > rule.max_total_chars:
                fields.refuse(name, f"must hold at most {rule.max_total_chars} characters in all")
            return entries

        readers: dict[str, Reader] = {
            "vocabulary": vocabulary,
            "default_intensity": lambda key, number: fields.number(key, number, 0, 1),
        }
        config = fields.read_object(f"{field}.", fields.mapping(field, value), readers)
        if isinstance(value, dict) and "vocabulary" not in config:
            fields.refuse(f"{field}.vocabulary", "is required")
        return config

    @staticmethod
    def _settle_audio_format(fields: _Fields, config: dict[str, Any]) -> None:
        encoding = config.get("encoding", "wav/pcm")
        if encoding not in ("wav/alaw", "wav/ulaw"):
            return
        # Gladia's default bit depth is 16, which these 8-bit encodings cannot have.
        if config.setdefault("bit_depth", 8) != 8:
            fields.refuse("bit_depth", f"must be 8 with the {encoding} encoding")

    @staticmethod
    def _settle_addons(
        fields: _Fields, config: dict[str, Any], from_client: Mapping[str, Any]
    ) -> None:
        for section, switch, settings_key, required in _ADDON_PAIRS:
            part = config.get(section)
            if not isinstance(part, dict):
                continue
            switched_on = part.get(switch) is True
            refused = any(p.field == f"{section}.{switch}" for p in fields.problems)
            if switched_on and required and settings_key not in part and not refused:
                fields.refuse(f"{section}.{settings_key}", f"is required with {section}.{switch}")
            if settings_key in part and not switched_on:
                sent = from_client.get(section)
                if isinstance(sent, dict) and settings_key in sent:
                    fields.refuse(
                        f"{section}.{settings_key}", f"is only allowed with {section}.{switch}"
                    )
                else:
                    # A preset's add-on settings, switched off by an allowed override.
                    del part[settings_key]

    def _settle_languages(self, config: dict[str, Any]) -> None:
        # Without a list Gladia detects among all its languages; a narrowed policy names its own.
        if self.rules.languages >= LANGUAGES:
            return
        language_config = config.get("language_config")
        if language_config is None:
            language_config = config["language_config"] = {}
        if isinstance(language_config, dict) and not language_config.get("languages"):
            language_config["languages"] = sorted(self.rules.languages)


def _custom_metadata(fields: _Fields, field: str, value: object) -> dict[str, Any]:
    """A client's own metadata: a flat object of short keys and short scalar values."""
    metadata = fields.mapping(field, value)
    if len(metadata) > METADATA_MAX_ENTRIES:
        fields.refuse(field, f"must have at most {METADATA_MAX_ENTRIES} entries")
        return {}
    kept: dict[str, Any] = {}
    for key, item in metadata.items():
        name = f"{field}.{_field_name(key)}"
        if not 1 <= len(key) <= METADATA_MAX_KEY or _METADATA_KEY_BARRED.search(key):
            fields.refuse(
                name, f"must be named by 1 to {METADATA_MAX_KEY} letters, digits, '_', '.' or '-'"
            )
        elif not _metadata_value(item):
            fields.refuse(
                name,
                f"must be a string of at most {METADATA_MAX_TEXT} characters without control "
                f"characters, a number from -{METADATA_MAX_NUMBER} to {METADATA_MAX_NUMBER}, "
                "true, false or null",
            )
        else:
            kept[key] = item
    return kept


def _metadata_value(item: object) -> bool:
    if item is None or isinstance(item, bool):
        return True
    if isinstance(item, int | float):
        # NaN and the infinities (which Python's JSON reads) fail the comparison.
        return -METADATA_MAX_NUMBER <= item <= METADATA_MAX_NUMBER
    if isinstance(item, str):
        # A lone surrogate (`"\ud800"` is valid JSON) would break any UTF-8 rendering of it.
        return (
            len(item) <= METADATA_MAX_TEXT
            and not _METADATA_TEXT_BARRED.search(item)
            and not any("\ud800" <= char <= "\udfff" for char in item)
        )
    return False


def _field_name(key: str) -> str:
    """A key as a person can read it in an error: quoted when empty, odd, or too long."""
    if key and len(key) <= _MAX_FIELD_NAME and key.replace("_", "").isalnum() and key.isascii():
        return key
    return json.dumps(key[:_MAX_FIELD_NAME])


def _leaf_paths(value: Mapping[str, Any]) -> list[str]:
    """Dotted paths of every non-object value (or empty object) in a client's overrides."""
    paths = []
    pending = [(_field_name(key), item, 1) for key, item in value.items()]
    while pending:
        path, item, depth = pending.pop(0)
        if isinstance(item, dict) and item and depth < _MAX_OVERRIDE_DEPTH:
            pending.extend(
                (f"{path}.{_field_name(key)}", child, depth + 1) for key, child in item.items()
            )
        else:
            paths.append(path)
    return paths


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` laid over it; objects merge key by key, anything else replaces."""
    result: dict[str, Any] = {
        key: _merged(value, {}) if isinstance(value, dict) else value for key, value in base.items()
    }
    for key, value in overrides.items():
        current = result.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            result[key] = _merged(current, value)
        else:
            result[key] = value
    return result
