"""Deterministic stand-ins for Gladia's add-ons: translation, entities, sentiment, summary."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from broker.simulator.messages import Message, envelope
from broker.simulator.transcriber import Utterance, build_utterance


def _translated(utterance: Utterance, target: str) -> Utterance:
    source = build_utterance(
        utterance.id, utterance.start, utterance.end, utterance.channel, target
    )
    return replace(source, text=f"[{target}] {utterance.text}")


def realtime_messages(
    session_id: str, params: dict[str, Any], utterance: Utterance
) -> list[Message]:
    """The realtime add-on messages that follow a final transcript."""
    realtime = params["realtime_processing"]
    found: list[Message] = []
    if realtime["translation"]:
        config = realtime.get("translation_config") or {"target_languages": []}
        for target in config["target_languages"]:
            data = {
                "utterance_id": utterance.id,
                "utterance": utterance.to_json(),
                "original_language": utterance.language,
                "target_language": target,
                "translated_utterance": _translated(utterance, target).to_json(),
            }
            found.append(envelope(session_id, "translation", error=None, data=data))
    if realtime["named_entity_recognition"]:
        data = {"utterance_id": utterance.id, "utterance": utterance.to_json(), "results": []}
        found.append(envelope(session_id, "named_entity_recognition", error=None, data=data))
    if realtime["sentiment_analysis"]:
        result = {
            "sentiment": "neutral",
            "emotion": "neutral",
            "text": utterance.text,
            "start": utterance.start,
            "end": utterance.end,
            "channel": utterance.channel,
        }
        data = {"utterance_id": utterance.id, "utterance": utterance.to_json(), "results": [result]}
        found.append(envelope(session_id, "sentiment_analysis", error=None, data=data))
    return found


def summary(utterances: list[Utterance]) -> str:
    """Summarise what was heard."""
    seconds = sum(u.end - u.start for u in utterances)
    return f"{len(utterances)} utterances, {seconds:.2f} seconds of speech."


def _wrapper(results: Any) -> dict[str, Any]:
    return {
        "success": True,
        "is_empty": not results,
        "exec_time": 0.0,
        "error": None,
        "results": results,
    }


def result_addons(params: dict[str, Any], utterances: list[Utterance]) -> dict[str, Any]:
    """The add-on sections of a finished session's result."""
    realtime = params["realtime_processing"]
    sections: dict[str, Any] = {}
    if realtime["translation"]:
        config = realtime.get("translation_config") or {"target_languages": []}
        translations = []
        for target in config["target_languages"]:
            translated = [_translated(u, target) for u in utterances]
            translations.append(
                {
                    "error": None,
                    "full_transcript": " ".join(u.text for u in translated),
                    "languages": [target],
                    "utterances": [u.to_json() for u in translated],
                }
            )
        sections["translation"] = _wrapper(translations)
    if realtime["named_entity_recognition"]:
        sections["named_entity_recognition"] = _wrapper([])
    if realtime["sentiment_analysis"]:
        sections["sentiment_analysis"] = _wrapper("neutral")
    if params["post_processing"]["summarization"]:
        sections["summarization"] = _wrapper(summary(utterances))
    return sections


def post_messages(
    session_id: str, params: dict[str, Any], utterances: list[Utterance]
) -> list[Message]:
    """The post-processing add-on messages (a summary when summarization is on)."""
    if not params["post_processing"]["summarization"]:
        return []
    return [
        envelope(
            session_id, "post_summarization", error=None, data={"results": summary(utterances)}
        )
    ]
