"""`CreateSessionRequest`: what a client may ask Gladia for, drawn from the policy rules.

Shared by POST /v1/sessions and the facade's POST /v2/live; every enum and cap comes from the
`PolicyRules` the broker runs with, so the document refuses what the policy refuses.
"""

from __future__ import annotations

from broker.policy.init_body import (
    MESSAGE_FLAGS,
    METADATA_KEY_BARRED,
    METADATA_MAX_ENTRIES,
    METADATA_MAX_KEY,
    METADATA_MAX_NUMBER,
    METADATA_MAX_TEXT,
    METADATA_TEXT_BARRED,
)
from broker.policy.rules import PolicyRules
from broker.web.openapi.schema import JsonObject, closed

TELEPHONY_ENCODINGS = ("wav/alaw", "wav/ulaw")


def create_session_request(rules: PolicyRules) -> JsonObject:
    """The closed body of a create, within these rules."""
    properties: JsonObject = {
        "encoding": {"enum": list(rules.encodings)},
        "bit_depth": {"enum": list(rules.bit_depths)},
        "sample_rate": {"enum": list(rules.sample_rates)},
        "channels": {"type": "integer", "minimum": 1, "maximum": rules.max_channels},
        "endpointing": {"type": "number", "minimum": 0.01, "maximum": 10},
        "maximum_duration_without_endpointing": {"type": "number", "minimum": 5, "maximum": 60},
        "language_config": _language_config(rules),
        "messages_config": _messages_config(),
        "realtime_processing": _realtime_processing(rules),
        "post_processing": _post_processing(rules),
        "custom_metadata": _custom_metadata(),
        "region": {"enum": list(rules.regions)},
    }
    if rules.models:
        properties["model"] = {"enum": list(rules.models)}
    if rules.presets:
        properties["preset"] = {"enum": sorted(rules.presets)}
    body = closed(properties)
    telephony = [name for name in TELEPHONY_ENCODINGS if name in rules.encodings]
    if telephony:
        # The 8-bit telephony encodings cannot have Gladia's default depth of 16.
        body["if"] = {"properties": {"encoding": {"enum": telephony}}, "required": ["encoding"]}
        body["then"] = {"properties": {"bit_depth": {"const": 8}}}
    return body


def _language_config(rules: PolicyRules) -> JsonObject:
    return closed(
        {
            "languages": {
                "type": "array",
                "items": {"enum": sorted(rules.languages)},
                "maxItems": rules.max_languages,
                "uniqueItems": True,
            },
            "code_switching": {"type": "boolean"},
        }
    )


def _messages_config() -> JsonObject:
    return closed(
        {flag: {"type": "boolean"} for flag in MESSAGE_FLAGS}
        # Reconnecting without losing audio needs acknowledgments: they cannot be turned off.
        | {"receive_acknowledgments": {"const": True}}
    )


def _realtime_processing(rules: PolicyRules) -> JsonObject:
    realtime: JsonObject = {
        "translation": _switch(rules.translation is not None),
        "named_entity_recognition": _switch(rules.named_entity_recognition),
        "sentiment_analysis": _switch(rules.sentiment_analysis),
        "custom_vocabulary": _switch(rules.custom_vocabulary is not None),
    }
    # Add-on configurations are checked against the policy file's caps (docs/policy-and-limits.md).
    if rules.translation is not None:
        realtime["translation_config"] = {"type": "object"}
    if rules.custom_vocabulary is not None:
        realtime["custom_vocabulary_config"] = {"type": "object"}
    return closed(realtime)


def _post_processing(rules: PolicyRules) -> JsonObject:
    post: JsonObject = {"summarization": _switch(rules.summarization is not None)}
    if rules.summarization is not None:
        post["summarization_config"] = closed({"type": {"enum": list(rules.summarization.types)}})
    return closed(post)


def _custom_metadata() -> JsonObject:
    """The client's own metadata, flat and small; kept under `client` beside the broker's."""
    return {
        "type": "object",
        "maxProperties": METADATA_MAX_ENTRIES,
        # `not` a barred character, rather than an anchored pattern: `$` also matches before a
        # final newline in Python's reading of a pattern.
        "propertyNames": {
            "minLength": 1,
            "maxLength": METADATA_MAX_KEY,
            "not": {"pattern": METADATA_KEY_BARRED},
        },
        "additionalProperties": {
            "anyOf": [
                {
                    "type": "string",
                    "maxLength": METADATA_MAX_TEXT,
                    "not": {"pattern": METADATA_TEXT_BARRED},
                },
                {"type": "number", "minimum": -METADATA_MAX_NUMBER, "maximum": METADATA_MAX_NUMBER},
                {"type": "boolean"},
                {"type": "null"},
            ]
        },
    }


def _switch(enabled: bool) -> JsonObject:
    """An add-on switch: free when ops enabled the add-on, otherwise only `false`."""
    return {"type": "boolean"} if enabled else {"const": False}
