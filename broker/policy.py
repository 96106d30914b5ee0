"""A client's create request to the exact Gladia init body, or a refusal naming the field."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import FieldProblem, InvalidFields
from broker.settings import GLADIA_REGIONS

ENCODINGS = ("wav/pcm", "wav/alaw", "wav/ulaw")
BIT_DEPTHS = (8, 16, 24, 32)
SAMPLE_RATES = (8000, 16000, 32000, 44100, 48000)
LANGUAGES = frozenset(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw "
    "he hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt "
    "my ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl "
    "tr tt uk ur uz vi yi yo zh".split()
)
MAX_LANGUAGES = 10
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
BROKER_OWNED_FIELDS = ("callback", "callback_config", "custom_metadata")


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

    def choice(self, field: str, value: object, allowed: tuple[Any, ...]) -> Any:
        # bool is an int in Python; `true` is never a valid sample rate.
        if isinstance(value, bool) or value not in allowed:
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
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.refuse(field, f"must be an integer from {low} to {high}")
            return low
        return value

    def mapping(self, field: str, value: object) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.refuse(field, "must be an object")
            return {}
        return value

    def read_object(
        self,
        prefix: str,
        value: Mapping[str, Any],
        readers: Mapping[str, Callable[[str, Any], Any]],
    ) -> dict[str, Any]:
        """Read every allowed key of an object; any other key is refused by name."""
        result: dict[str, Any] = {}
        for key, item in value.items():
            field = f"{prefix}{key}"
            if key in BROKER_OWNED_FIELDS and not prefix:
                self.refuse(field, "is set by the broker and may not be sent")
            elif key not in readers:
                self.refuse(field, "is not an allowed field")
            else:
                result[key] = readers[key](field, item)
        return result


# (subject key, request id) -> the `callback` and `callback_config` fields of a create.
CallbackFields = Callable[[str, str], dict[str, Any]]


class SessionPolicy:
    """Which Gladia session configurations clients may ask for."""

    def __init__(
        self,
        max_channels: int,
        default_region: str | None,
        callback_fields: CallbackFields | None = None,
    ) -> None:
        self._max_channels = max_channels
        self._default_region = default_region
        self._callback_fields = callback_fields

    def build_init_request(self, client_body: object, subject_key: str) -> InitRequest:
        """Map an untrusted create body to the Gladia init body; raises InvalidFields."""
        fields = _Fields()
        body = fields.mapping("body", client_body)
        chosen = fields.read_object("", body, self._readers(fields))
        region = chosen.pop("region", None) or self._default_region
        self._settle_audio_format(fields, chosen)
        if fields.problems:
            raise InvalidFields(
                "The session configuration has fields that are not allowed or not valid",
                problems=tuple(fields.problems),
            )
        request_id = uuid.uuid4().hex
        messages_config = {**chosen.pop("messages_config", {}), "receive_acknowledgments": True}
        callback = self._callback_fields(subject_key, request_id) if self._callback_fields else {}
        gladia_body = {
            **chosen,
            "messages_config": messages_config,
            **callback,
            "custom_metadata": {"broker_request_id": request_id, "broker_subject": subject_key},
        }
        return InitRequest(body=gladia_body, region=region, request_id=request_id)

    def _readers(self, fields: _Fields) -> dict[str, Callable[[str, Any], Any]]:
        return {
            "encoding": lambda field, value: fields.choice(field, value, ENCODINGS),
            "bit_depth": lambda field, value: fields.choice(field, value, BIT_DEPTHS),
            "sample_rate": lambda field, value: fields.choice(field, value, SAMPLE_RATES),
            "channels": lambda field, value: fields.integer(field, value, 1, self._max_channels),
            "endpointing": lambda field, value: fields.number(field, value, 0.01, 10),
            "maximum_duration_without_endpointing": lambda field, value: fields.number(
                field, value, 5, 60
            ),
            "language_config": lambda field, value: self._language_config(fields, field, value),
            "messages_config": lambda field, value: self._messages_config(fields, field, value),
            "region": lambda field, value: fields.choice(field, value, GLADIA_REGIONS),
        }

    def _language_config(self, fields: _Fields, field: str, value: object) -> dict[str, Any]:
        readers: dict[str, Callable[[str, Any], Any]] = {
            "languages": lambda name, item: self._languages(fields, name, item),
            "code_switching": fields.boolean,
        }
        return fields.read_object(f"{field}.", fields.mapping(field, value), readers)

    def _languages(self, fields: _Fields, field: str, value: object) -> list[str]:
        if not isinstance(value, list) or len(value) > MAX_LANGUAGES:
            fields.refuse(field, f"must be a list of at most {MAX_LANGUAGES} language codes")
            return []
        for index, code in enumerate(value):
            if not isinstance(code, str) or code not in LANGUAGES:
                fields.refuse(f"{field}[{index}]", "must be a Gladia language code such as 'en'")
        return list(value)

    def _messages_config(self, fields: _Fields, field: str, value: object) -> dict[str, bool]:
        readers: dict[str, Callable[[str, Any], Any]] = dict.fromkeys(MESSAGE_FLAGS, fields.boolean)
        config = fields.read_object(f"{field}.", fields.mapping(field, value), readers)
        if config.get("receive_acknowledgments") is False:
            fields.refuse(
                f"{field}.receive_acknowledgments",
                "must be true: reconnecting without losing audio needs acknowledgments",
            )
        return config

    @staticmethod
    def _settle_audio_format(fields: _Fields, chosen: dict[str, Any]) -> None:
        encoding = chosen.get("encoding", "wav/pcm")
        if encoding not in ("wav/alaw", "wav/ulaw"):
            return
        # Gladia's default bit depth is 16, which these 8-bit encodings cannot have.
        if chosen.setdefault("bit_depth", 8) != 8:
            fields.refuse("bit_depth", f"must be 8 with the {encoding} encoding")
