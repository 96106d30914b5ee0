"""Gladia Live v2 server messages: their envelopes, and the configuration flag gating each."""

from __future__ import annotations

from typing import Any

from broker.simulator.timestamps import iso_now
from broker.simulator.transcriber import Event, SpeechEvent, Utterance

Message = dict[str, Any]

_FLAG_BY_TYPE = {
    "speech_start": "receive_speech_events",
    "speech_end": "receive_speech_events",
    "translation": "receive_realtime_processing_events",
    "named_entity_recognition": "receive_realtime_processing_events",
    "sentiment_analysis": "receive_realtime_processing_events",
    "post_transcript": "receive_post_processing_events",
    "post_final_transcript": "receive_post_processing_events",
    "post_summarization": "receive_post_processing_events",
    "post_chapterization": "receive_post_processing_events",
    "audio_chunk": "receive_acknowledgments",
    "stop_recording": "receive_acknowledgments",
    "start_session": "receive_lifecycle_events",
    "start_recording": "receive_lifecycle_events",
    "end_recording": "receive_lifecycle_events",
    "end_session": "receive_lifecycle_events",
    "error": "receive_errors",
}


def flag_for(message: Message) -> str:
    """Name the messages_config / callback_config flag that governs a message."""
    if message["type"] == "transcript":
        final = message["data"]["is_final"]
        return "receive_final_transcripts" if final else "receive_partial_transcripts"
    return _FLAG_BY_TYPE[message["type"]]


def envelope(session_id: str, message_type: str, **fields: Any) -> Message:
    """Build a message with the common ``session_id``, ``created_at`` and ``type``."""
    return {"session_id": session_id, "created_at": iso_now(), "type": message_type, **fields}


def audio_chunk_ack(
    session_id: str, byte_range: tuple[int, int], time_range: tuple[float, float]
) -> Message:
    """Acknowledge an audio chunk with cumulative, end-exclusive ranges."""
    data = {"byte_range": list(byte_range), "time_range": list(time_range)}
    return envelope(session_id, "audio_chunk", acknowledged=True, error=None, data=data)


def refused_ack(session_id: str, message_type: str, reason: str) -> Message:
    """Refuse an action, as Gladia's acknowledgments do (``acknowledged: false``)."""
    return envelope(
        session_id, message_type, acknowledged=False, error={"message": reason}, data=None
    )


def stop_recording_ack(
    session_id: str, recording_duration: float, left_to_process: float
) -> Message:
    """Acknowledge stop_recording."""
    data = {"recording_duration": recording_duration, "recording_left_to_process": left_to_process}
    return envelope(session_id, "stop_recording", acknowledged=True, error=None, data=data)


def from_event(session_id: str, event: Event) -> Message:
    """Turn a transcriber event into its speech or transcript message."""
    if isinstance(event, SpeechEvent):
        return envelope(session_id, event.kind, data={"time": event.time, "channel": event.channel})
    data = {
        "id": event.utterance.id,
        "is_final": event.is_final,
        "utterance": event.utterance.to_json(),
    }
    return envelope(session_id, "transcript", data=data)


def transcription(utterances: list[Utterance], language: str) -> dict[str, Any]:
    """Build the TranscriptionDTO of a whole session."""
    ordered = sorted(utterances, key=lambda u: (u.start, u.channel))
    return {
        "full_transcript": " ".join(u.text for u in ordered),
        "languages": [language],
        "utterances": [u.to_json() for u in ordered],
    }


def error(session_id: str, reason: str) -> Message:
    """Report a client mistake on the socket (the shape is undocumented; this one is plausible)."""
    return envelope(session_id, "error", data={"message": reason})
