"""The StreamingRequest checks of POST /v2/live, and the effective parameters with every default."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from broker.simulator.errors import GladiaError

ENCODINGS = ("wav/pcm", "wav/alaw", "wav/ulaw")
BIT_DEPTHS = (8, 16, 24, 32)
SAMPLE_RATES = (8000, 16000, 32000, 44100, 48000)
MODELS = ("solaria-1",)
REGIONS = ("us-west", "eu-west")
SUMMARY_TYPES = ("general", "bullet_points", "concise")
TRANSLATION_MODELS = ("base", "batch", "enhanced")
LANGUAGES: tuple[str, ...] = tuple(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he "
    "hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne "
    "nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk "
    "ur uz vi yi yo zh".split()
)
TRANSLATION_LANGUAGES = (*LANGUAGES, "wo")
CUSTOM_METADATA_MAX_CHARS = 2000

FLAGS = (
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
MESSAGES_DEFAULTS = dict(
    zip(FLAGS, (False, True, True, True, True, True, True, True, False), strict=True)
)
# The callback defaults differ from the WebSocket ones (contract §1.2.6).
CALLBACK_DEFAULTS = dict(
    zip(FLAGS, (False, True, False, True, True, True, False, False, True), strict=True)
)
_LANGUAGE_SET = frozenset(LANGUAGES)
_TRANSLATION_LANGUAGE_SET = frozenset(TRANSLATION_LANGUAGES)
_ABSENT = object()


@dataclass(frozen=True)
class ValidatedRequest:
    """A valid create request: its effective parameters and the metadata to echo."""

    params: dict[str, Any]
    custom_metadata: Any


def _is_number(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value)
    )


def _one_of(path: str, choices: tuple[Any, ...]) -> str:
    return f"{path} must be one of the following values: {', '.join(map(str, choices))}"


class _Checker:
    """Collects every field error of one body, class-validator style ("path must ...")."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def section(self, parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.errors.append(f"{path} must be an object")
            return {}
        return value

    def boolean(self, obj: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.errors.append(f"{path} must be a boolean value")
            return default
        return value

    def number(
        self, obj: dict[str, Any], key: str, path: str, default: float, low: float, high: float
    ) -> float:
        value = obj.get(key)
        if value is None:
            return default
        if not _is_number(value):
            self.errors.append(f"{path} must be a number conforming to the specified constraints")
            return default
        if value < low:
            self.errors.append(f"{path} must not be less than {low:g}")
        elif value > high:
            self.errors.append(f"{path} must not be greater than {high:g}")
        return float(value) if isinstance(value, float) else value

    def integer(
        self, obj: dict[str, Any], key: str, path: str, default: int, low: int, high: int
    ) -> int:
        value = obj.get(key)
        if value is None:
            return default
        if not _is_number(value) or not float(value).is_integer():
            self.errors.append(f"{path} must be an integer number")
            return default
        if value < low:
            self.errors.append(f"{path} must not be less than {low}")
        elif value > high:
            self.errors.append(f"{path} must not be greater than {high}")
        return int(value)

    def choice(
        self, obj: dict[str, Any], key: str, path: str, default: Any, choices: tuple[Any, ...]
    ) -> Any:
        value = obj.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or value not in choices:
            self.errors.append(_one_of(path, choices))
            return default
        # JSON has one number type: 16.0 is the bit depth 16, as it is for Gladia's JavaScript.
        return int(value) if isinstance(value, float) else value

    def string(self, obj: dict[str, Any], key: str, path: str) -> Any:
        value = obj.get(key, _ABSENT)
        if value is _ABSENT or value is None:
            return _ABSENT
        if not isinstance(value, str):
            self.errors.append(f"{path} must be a string")
            return _ABSENT
        return value

    def codes(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        allowed: frozenset[str],
        choices: tuple[str, ...],
    ) -> list[str] | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.errors.append(f"{path} must be an array")
            return None
        for index, code in enumerate(value):
            if not isinstance(code, str) or code not in allowed:
                self.errors.append(_one_of(f"{path}.{index}", choices))
        return list(value)

    def flags(self, obj: dict[str, Any], path: str, defaults: dict[str, bool]) -> dict[str, bool]:
        result = dict(defaults)
        # Only the keys given are checked: this runs on every create and most bodies set few flags.
        for flag, value in obj.items():
            if flag in result and value is not None:
                if isinstance(value, bool):
                    result[flag] = value
                else:
                    self.errors.append(f"{path}.{flag} must be a boolean value")
        return result


def validate_region(region: str | None) -> str | None:
    """Check the ``region`` query parameter of POST /v2/live."""
    if region is None or region in REGIONS:
        return region
    raise GladiaError(400, validation_errors=[_one_of("region", REGIONS)])


def validate_streaming_request(body: Any) -> ValidatedRequest:
    """Validate a StreamingRequest and fill in every default, or raise a 400 naming bad fields."""
    if not isinstance(body, dict):
        raise GladiaError(400, validation_errors=["body must be a JSON object"])
    check = _Checker()
    encoding = check.choice(body, "encoding", "encoding", "wav/pcm", ENCODINGS)
    companded = encoding in ("wav/alaw", "wav/ulaw")
    bit_depth = check.choice(body, "bit_depth", "bit_depth", 8 if companded else 16, BIT_DEPTHS)
    if companded and bit_depth != 8:
        check.errors.append("bit_depth must be 8 when encoding is wav/alaw or wav/ulaw")
    params: dict[str, Any] = {
        "encoding": encoding,
        "bit_depth": bit_depth,
        "sample_rate": check.choice(body, "sample_rate", "sample_rate", 16000, SAMPLE_RATES),
        "channels": check.integer(body, "channels", "channels", 1, 1, 8),
        "model": check.choice(body, "model", "model", "solaria-1", MODELS),
        "endpointing": check.number(body, "endpointing", "endpointing", 0.05, 0.01, 10),
        "maximum_duration_without_endpointing": check.number(
            body,
            "maximum_duration_without_endpointing",
            "maximum_duration_without_endpointing",
            5,
            5,
            60,
        ),
        "language_config": _language_config(check, body),
        "pre_processing": _pre_processing(check, body),
        "realtime_processing": _realtime_processing(check, body),
        "post_processing": _post_processing(check, body),
        "messages_config": check.flags(
            check.section(body, "messages_config", "messages_config"),
            "messages_config",
            MESSAGES_DEFAULTS,
        ),
        "callback": check.boolean(body, "callback", "callback", False),
        "callback_config": _callback_config(check, body),
    }
    if params["callback"] and "url" not in params["callback_config"]:
        check.errors.append("callback_config.url must be a URL address when callback is true")
    custom_metadata = _custom_metadata(check, body)
    if check.errors:
        raise GladiaError(400, validation_errors=check.errors)
    return ValidatedRequest(params=params, custom_metadata=custom_metadata)


def _language_config(check: _Checker, body: dict[str, Any]) -> dict[str, Any]:
    section = check.section(body, "language_config", "language_config")
    languages = check.codes(
        section, "languages", "language_config.languages", _LANGUAGE_SET, LANGUAGES
    )
    return {
        "languages": languages or [],
        "code_switching": check.boolean(
            section, "code_switching", "language_config.code_switching", False
        ),
    }


def _pre_processing(check: _Checker, body: dict[str, Any]) -> dict[str, Any]:
    section = check.section(body, "pre_processing", "pre_processing")
    return {
        "audio_enhancer": check.boolean(
            section, "audio_enhancer", "pre_processing.audio_enhancer", False
        ),
        "speech_threshold": check.number(
            section, "speech_threshold", "pre_processing.speech_threshold", 0.6, 0, 1
        ),
    }


_REALTIME_FLAGS = {
    "custom_vocabulary": False,
    "custom_spelling": False,
    "translation": False,
    "named_entity_recognition": False,
    "sentiment_analysis": False,
}


def _realtime_processing(check: _Checker, body: dict[str, Any]) -> dict[str, Any]:
    section = check.section(body, "realtime_processing", "realtime_processing")
    result: dict[str, Any] = {}
    for switch, value in check.flags(section, "realtime_processing", _REALTIME_FLAGS).items():
        result[switch] = value
        # Each given config follows its switch in the echoed parameters, as in Gladia's examples.
        config = f"{switch}_config"
        if config in _REALTIME_CONFIG_BUILDERS and section.get(config) is not None:
            result[config] = _REALTIME_CONFIG_BUILDERS[config](check, section)
    return result


def _custom_vocabulary_config(check: _Checker, parent: dict[str, Any]) -> dict[str, Any]:
    path = "realtime_processing.custom_vocabulary_config"
    section = check.section(parent, "custom_vocabulary_config", path)
    vocabulary = section.get("vocabulary")
    if not isinstance(vocabulary, list):
        check.errors.append(f"{path}.vocabulary must be an array")
        vocabulary = []
    for index, entry in enumerate(vocabulary):
        entry_path = f"{path}.vocabulary.{index}"
        if isinstance(entry, str):
            continue
        if not isinstance(entry, dict):
            check.errors.append(f"{entry_path} must be a string or an object")
            continue
        if not isinstance(entry.get("value"), str):
            check.errors.append(f"{entry_path}.value must be a string")
        check.number(entry, "intensity", f"{entry_path}.intensity", 0, 0, 1)
        pronunciations = entry.get("pronunciations")
        if pronunciations is not None and (
            not isinstance(pronunciations, list)
            or not all(isinstance(p, str) for p in pronunciations)
        ):
            check.errors.append(f"{entry_path}.pronunciations must be an array of strings")
        if entry.get("language") is not None and entry["language"] not in _LANGUAGE_SET:
            check.errors.append(_one_of(f"{entry_path}.language", LANGUAGES))
    result: dict[str, Any] = {"vocabulary": vocabulary}
    if section.get("default_intensity") is not None:
        result["default_intensity"] = check.number(
            section, "default_intensity", f"{path}.default_intensity", 0, 0, 1
        )
    return result


def _custom_spelling_config(check: _Checker, parent: dict[str, Any]) -> dict[str, Any]:
    path = "realtime_processing.custom_spelling_config"
    section = check.section(parent, "custom_spelling_config", path)
    dictionary = section.get("spelling_dictionary")
    valid = isinstance(dictionary, dict) and all(
        isinstance(variants, list) and all(isinstance(v, str) for v in variants)
        for variants in dictionary.values()
    )
    if not valid:
        check.errors.append(f"{path}.spelling_dictionary must be an object of string arrays")
        dictionary = {}
    return {"spelling_dictionary": dictionary}


def _translation_config(check: _Checker, parent: dict[str, Any]) -> dict[str, Any]:
    path = "realtime_processing.translation_config"
    section = check.section(parent, "translation_config", path)
    targets = check.codes(
        section,
        "target_languages",
        f"{path}.target_languages",
        _TRANSLATION_LANGUAGE_SET,
        TRANSLATION_LANGUAGES,
    )
    if not targets:
        check.errors.append(f"{path}.target_languages must contain at least 1 elements")
    result: dict[str, Any] = {
        "target_languages": targets or [],
        "model": check.choice(section, "model", f"{path}.model", "base", TRANSLATION_MODELS),
        "match_original_utterances": check.boolean(
            section, "match_original_utterances", f"{path}.match_original_utterances", True
        ),
        "lipsync": check.boolean(section, "lipsync", f"{path}.lipsync", True),
        "context_adaptation": check.boolean(
            section, "context_adaptation", f"{path}.context_adaptation", True
        ),
        "informal": check.boolean(section, "informal", f"{path}.informal", False),
    }
    context = check.string(section, "context", f"{path}.context")
    if context is not _ABSENT:
        result["context"] = context
    return result


_REALTIME_CONFIG_BUILDERS = {
    "custom_vocabulary_config": _custom_vocabulary_config,
    "custom_spelling_config": _custom_spelling_config,
    "translation_config": _translation_config,
}


def _post_processing(check: _Checker, body: dict[str, Any]) -> dict[str, Any]:
    path = "post_processing"
    section = check.section(body, "post_processing", path)
    summary = check.section(section, "summarization_config", f"{path}.summarization_config")
    return {
        "summarization": check.boolean(section, "summarization", f"{path}.summarization", False),
        "summarization_config": {
            "type": check.choice(
                summary, "type", f"{path}.summarization_config.type", "general", SUMMARY_TYPES
            )
        },
        "chapterization": check.boolean(section, "chapterization", f"{path}.chapterization", False),
    }


def _callback_config(check: _Checker, body: dict[str, Any]) -> dict[str, Any]:
    section = check.section(body, "callback_config", "callback_config")
    result: dict[str, Any] = {}
    url = check.string(section, "url", "callback_config.url")
    if url is not _ABSENT:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            result["url"] = url
        else:
            check.errors.append("callback_config.url must be a URL address")
    result.update(check.flags(section, "callback_config", CALLBACK_DEFAULTS))
    return result


def _custom_metadata(check: _Checker, body: dict[str, Any]) -> Any:
    metadata = body.get("custom_metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        check.errors.append("custom_metadata must be an object")
        return None
    if (
        len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False))
        > CUSTOM_METADATA_MAX_CHARS
    ):
        check.errors.append(
            "custom_metadata must be shorter than or equal to "
            f"{CUSTOM_METADATA_MAX_CHARS} characters when stringified"
        )
    return metadata
