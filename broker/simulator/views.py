"""The JSON shapes of a session on the REST API (StreamingResponse) and on the controls."""

from __future__ import annotations

import json
import time
from typing import Any

from broker.simulator import addons, messages
from broker.simulator.sessions import LiveSession
from broker.simulator.timestamps import iso


def result_metadata(session: LiveSession) -> dict[str, Any]:
    """Duration, channels, billing time (duration x channels) and processing time."""
    duration = session.recording_duration
    channels = session.audio_format.channels
    started = session.recording_started_mono
    ended = session.completed_mono or time.monotonic()
    return {
        "audio_duration": duration,
        "number_of_distinct_channels": channels,
        "billing_time": round(duration * channels, 3),
        "transcription_time": 0.0 if started is None else round(ended - started, 3),
    }


def session_json(session: LiveSession) -> dict[str, Any]:
    """Gladia's StreamingResponse for GET /v2/live/{id} and list items."""
    return {
        "id": session.id,
        "request_id": "G-" + session.id[:8],
        "version": 2,
        "status": session.status,
        "created_at": iso(session.created_at),
        "completed_at": iso(session.completed_at) if session.completed_at else None,
        "custom_metadata": session.custom_metadata,
        "error_code": session.error_code,
        "kind": "live",
        "file": _file(session),
        "request_params": session.params,
        "result": _result(session) if session.status == "done" else None,
    }


def _file(session: LiveSession) -> dict[str, Any] | None:
    if session.bytes_received == 0:
        return None
    return {
        "id": session.file_id,
        "filename": None,
        "source": None,
        "audio_duration": session.recording_duration,
        "number_of_channels": session.audio_format.channels,
    }


def _result(session: LiveSession) -> dict[str, Any]:
    result: dict[str, Any] = {
        "metadata": result_metadata(session),
        "transcription": messages.transcription(session.utterances, session.language),
    }
    result.update(addons.result_addons(session.params, session.utterances))
    result["messages"] = list(session.messages)
    return result


def inspection_json(session: LiveSession) -> dict[str, Any]:
    """What the /_simulator controls show of a session, beyond Gladia's own view."""
    return {
        "id": session.id,
        "status": session.status,
        "bytes_received": session.bytes_received,
        "recording_duration": session.recording_duration,
        "connected": session.socket is not None,
        "recording_ended": session.recording_ended,
        "request_params": session.params,
        "utterances": [u.to_json() for u in session.utterances],
        "messages": [json.loads(text) for text in session.messages],
    }
