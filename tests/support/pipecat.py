"""What Pipecat's `GladiaSTTService` sends to `POST /v2/live` (pipecat-ai 1.14,
`_prepare_settings`), with a language: the one request shape both its tests use."""

from __future__ import annotations

from typing import Any

PIPECAT_BODY: dict[str, Any] = {
    "encoding": "wav/pcm",
    "bit_depth": 16,
    "sample_rate": 16000,
    "channels": 1,
    "model": "solaria-1",
    "custom_metadata": {"pipecat": "1.14.0"},
    "maximum_duration_without_endpointing": 5,
    "language_config": {"languages": ["en"], "code_switching": False},
}
