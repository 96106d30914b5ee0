"""The deterministic transcriber: every encoding, channels, endpointing, and stream quirks."""

from __future__ import annotations

import io
import wave

import pytest

from broker.simulator.pcm import AudioFormat
from broker.simulator.transcriber import (
    SpeechEvent,
    Transcriber,
    TranscriberSettings,
    TranscriptEvent,
)
from tests.simulator.audio import chunks, encode, interleave, samples

PATTERN = [(0.3, 0.0), (0.6, 0.5), (0.3, 0.0), (0.4, 0.3), (0.2, 0.0)]


def _transcriber(
    encoding: str = "wav/pcm",
    bit_depth: int = 16,
    sample_rate: int = 16000,
    channels: int = 1,
    endpointing_s: float = 0.05,
    max_utterance_s: float = 5.0,
) -> Transcriber:
    audio_format = AudioFormat(encoding, bit_depth, sample_rate, channels)
    settings = TranscriberSettings(audio_format, endpointing_s, max_utterance_s, 0.6, "en", 0.2)
    return Transcriber(settings)


def _spans(transcriber: Transcriber) -> list[tuple[int, float, float]]:
    return [(u.channel, u.start, u.end) for u in transcriber.utterances]


def _run(transcriber: Transcriber, audio: bytes, chunk_size: int = 1000) -> list[object]:
    events: list[object] = []
    for chunk in chunks(audio, chunk_size):
        events.extend(transcriber.feed(chunk))
    events.extend(transcriber.finish())
    return events


@pytest.mark.parametrize(
    ("encoding", "bit_depth"),
    [
        ("wav/pcm", 8),
        ("wav/pcm", 16),
        ("wav/pcm", 24),
        ("wav/pcm", 32),
        ("wav/alaw", 8),
        ("wav/ulaw", 8),
    ],
)
@pytest.mark.parametrize("sample_rate", [8000, 44100])
def test_every_encoding_yields_the_same_utterances(
    encoding: str, bit_depth: int, sample_rate: int
) -> None:
    transcriber = _transcriber(encoding, bit_depth, sample_rate)

    _run(transcriber, encode(samples(PATTERN, sample_rate), encoding, bit_depth), chunk_size=999)

    assert _spans(transcriber) == [(0, 0.3, 0.9), (0, 1.2, 1.6)]


def test_the_result_does_not_depend_on_how_the_stream_was_chunked() -> None:
    audio = encode(samples(PATTERN))
    spans = []
    for size in (1, 7, 3200, len(audio)):
        transcriber = _transcriber()
        _run(transcriber, audio, size)
        spans.append(_spans(transcriber))

    assert all(s == spans[0] for s in spans)


def test_interleaved_channels_are_transcribed_separately() -> None:
    left = encode(samples([(0.2, 0), (0.4, 0.5), (0.6, 0)]))
    middle = encode(samples([(0.6, 0), (0.3, 0.5), (0.3, 0)]))
    right = encode(samples([(0.9, 0), (0.2, 0.5), (0.1, 0)]))
    transcriber = _transcriber(channels=3)

    events = _run(transcriber, interleave([left, middle, right], 2))

    assert _spans(transcriber) == [(0, 0.2, 0.6), (1, 0.6, 0.9), (2, 0.9, 1.1)]
    assert [u.id for u in transcriber.utterances] == ["00-00000000", "01-00000000", "02-00000000"]
    assert transcriber.utterances[1].text == "Speech of 0.30 seconds on channel 1."
    starts = [
        (e.channel, e.time)
        for e in events
        if isinstance(e, SpeechEvent) and e.kind == "speech_start"
    ]
    assert starts == [(0, 0.2), (1, 0.6), (2, 0.9)]


def test_a_pause_shorter_than_endpointing_does_not_split_an_utterance() -> None:
    audio = encode(samples([(0.4, 0.5), (0.2, 0), (0.4, 0.5), (0.5, 0)]))
    patient = _transcriber(endpointing_s=0.3)
    eager = _transcriber(endpointing_s=0.1)

    _run(patient, audio)
    _run(eager, audio)

    assert _spans(patient) == [(0, 0.0, 1.0)]
    assert _spans(eager) == [(0, 0.0, 0.4), (0, 0.6, 1.0)]


def test_an_utterance_is_cut_at_the_maximum_duration_without_endpointing() -> None:
    transcriber = _transcriber(max_utterance_s=5.0)

    _run(transcriber, encode(samples([(12.0, 0.5)])), chunk_size=32000)

    assert _spans(transcriber) == [(0, 0.0, 5.0), (0, 5.0, 10.0), (0, 10.0, 12.0)]


def test_partials_grow_and_share_the_id_of_their_final() -> None:
    transcriber = _transcriber()

    events = _run(transcriber, encode(samples([(1.0, 0.5), (0.2, 0)])))

    transcripts = [e for e in events if isinstance(e, TranscriptEvent)]
    partial_ends = [e.utterance.end for e in transcripts if not e.is_final]
    assert partial_ends == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert {e.utterance.id for e in transcripts} == {"00-00000000"}
    assert transcripts[-1].is_final


def test_a_wav_header_at_the_start_is_skipped_even_when_split() -> None:
    raw = encode(samples(PATTERN))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(raw)
    transcriber = _transcriber()

    _run(transcriber, buffer.getvalue(), chunk_size=5)

    assert _spans(transcriber) == [(0, 0.3, 0.9), (0, 1.2, 1.6)]


def test_quiet_noise_below_the_threshold_is_silence() -> None:
    transcriber = _transcriber()

    _run(transcriber, encode(samples([(1.0, 0.005)])))

    assert transcriber.utterances == []


def test_speech_running_to_the_end_is_closed_by_finish() -> None:
    transcriber = _transcriber()
    assert transcriber.feed(encode(samples([(0.1, 0), (0.5, 0.5)]))) != []

    events = transcriber.finish()

    assert [type(e).__name__ for e in events] == ["SpeechEvent", "TranscriptEvent"]
    assert _spans(transcriber) == [(0, 0.1, 0.6)]
