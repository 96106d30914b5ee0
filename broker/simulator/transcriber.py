"""A deterministic "recogniser": utterances are the stretches of non-silent audio per channel.

Audio is cut into 20 ms frames per channel; a frame is voiced when its RMS level is above a
threshold set by ``pre_processing.speech_threshold``. An utterance closes after ``endpointing``
seconds of silence, or at ``maximum_duration_without_endpointing``. Its text names what was heard.
"""

from __future__ import annotations

import operator
from array import array
from dataclasses import dataclass
from typing import Any, Literal

from broker.simulator.pcm import AudioFormat, decode
from broker.simulator.wav import audio_offset

FRAME_S = 0.02
CONFIDENCE = 0.95


def _t(seconds: float) -> float:
    return round(seconds, 3)


@dataclass(frozen=True)
class Word:
    """One word of an utterance, with times in seconds from the session start."""

    word: str
    start: float
    end: float
    confidence: float

    def to_json(self) -> dict[str, Any]:
        """Return Gladia's WordDTO."""
        return {
            "word": self.word,
            "start": self.start,
            "end": self.end,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech on one channel, final or still in progress."""

    id: str
    start: float
    end: float
    channel: int
    text: str
    language: str
    words: tuple[Word, ...]
    confidence: float = CONFIDENCE

    def to_json(self) -> dict[str, Any]:
        """Return Gladia's UtteranceDTO."""
        return {
            "start": self.start,
            "end": self.end,
            "confidence": self.confidence,
            "channel": self.channel,
            "words": [word.to_json() for word in self.words],
            "text": self.text,
            "language": self.language,
        }


@dataclass(frozen=True)
class SpeechEvent:
    """Voice activity starting or ending on a channel."""

    kind: Literal["speech_start", "speech_end"]
    time: float
    channel: int


@dataclass(frozen=True)
class TranscriptEvent:
    """A partial or final transcript of one utterance."""

    utterance: Utterance
    is_final: bool


Event = SpeechEvent | TranscriptEvent


@dataclass(frozen=True)
class TranscriberSettings:
    """What shapes the transcription of one session."""

    audio_format: AudioFormat
    endpointing_s: float
    max_utterance_s: float
    speech_threshold: float
    language: str
    partial_interval_s: float

    @classmethod
    def from_params(cls, params: dict[str, Any], partial_interval_s: float) -> TranscriberSettings:
        """Read the settings from a session's effective request parameters."""
        languages = params["language_config"]["languages"]
        return cls(
            audio_format=AudioFormat(
                params["encoding"], params["bit_depth"], params["sample_rate"], params["channels"]
            ),
            endpointing_s=params["endpointing"],
            max_utterance_s=params["maximum_duration_without_endpointing"],
            speech_threshold=params["pre_processing"]["speech_threshold"],
            language=languages[0] if languages else "en",
            partial_interval_s=partial_interval_s,
        )


def build_utterance(
    utterance_id: str, start: float, end: float, channel: int, language: str
) -> Utterance:
    """Name what was heard, with words spread evenly over the utterance."""
    start, end = _t(start), _t(end)
    text = f"Speech of {end - start:.2f} seconds on channel {channel}."
    tokens = text.split(" ")
    step = (end - start) / len(tokens)
    words = tuple(
        Word(
            word=token if index == 0 else " " + token,
            start=_t(start + index * step),
            end=_t(start + (index + 1) * step) if index < len(tokens) - 1 else end,
            confidence=CONFIDENCE,
        )
        for index, token in enumerate(tokens)
    )
    return Utterance(utterance_id, start, end, channel, text, language, words)


class _Channel:
    """Voice activity and utterance state of one channel."""

    def __init__(self, channel: int, settings: TranscriberSettings) -> None:
        self.channel = channel
        self.settings = settings
        self.in_speech = False
        self.utterance_start: float | None = None
        self.last_voiced_end = 0.0
        self.last_partial_end = 0.0
        self.count = 0

    @property
    def utterance_id(self) -> str:
        return f"{self.channel:02d}-{self.count:08d}"

    def step(self, start: float, end: float, voiced: bool) -> list[Event]:
        events: list[Event] = []
        if voiced:
            if not self.in_speech:
                self.in_speech = True
                events.append(SpeechEvent("speech_start", _t(start), self.channel))
            if self.utterance_start is None:
                self.utterance_start = start
                self.last_partial_end = start
            self.last_voiced_end = end
            if end - self.utterance_start >= self.settings.max_utterance_s - 1e-9:
                events.append(self._close())
            elif end - self.last_partial_end >= self.settings.partial_interval_s - 1e-9:
                self.last_partial_end = end
                events.append(TranscriptEvent(self._current(), is_final=False))
        elif self.in_speech and end - self.last_voiced_end >= self.settings.endpointing_s - 1e-9:
            events.extend(self._end_speech())
        return events

    def finish(self) -> list[Event]:
        return self._end_speech() if self.in_speech else []

    def pending_s(self, now: float) -> float:
        return 0.0 if self.utterance_start is None else now - self.utterance_start

    def _end_speech(self) -> list[Event]:
        self.in_speech = False
        events: list[Event] = [SpeechEvent("speech_end", _t(self.last_voiced_end), self.channel)]
        if self.utterance_start is not None:
            events.append(self._close())
        return events

    def _current(self) -> Utterance:
        assert self.utterance_start is not None
        return build_utterance(
            self.utterance_id,
            self.utterance_start,
            self.last_voiced_end,
            self.channel,
            self.settings.language,
        )

    def _close(self) -> TranscriptEvent:
        event = TranscriptEvent(self._current(), is_final=True)
        self.utterance_start = None
        self.count += 1
        return event


class Transcriber:
    """Turns a session's audio bytes, chunk by chunk, into speech events and transcripts."""

    def __init__(self, settings: TranscriberSettings) -> None:
        audio_format = settings.audio_format
        self._format = audio_format
        self._frame_samples = round(audio_format.sample_rate * FRAME_S)
        threshold = audio_format.full_scale * 10 ** ((-60 + 40 * settings.speech_threshold) / 20)
        self._threshold_sq = threshold * threshold
        self._channels = [_Channel(index, settings) for index in range(audio_format.channels)]
        self._prefix: bytes | None = b""
        self._carry = b""
        self._pending: array[int] = decode(b"", audio_format)
        self._samples_done = 0
        self.utterances: list[Utterance] = []

    def feed(self, data: bytes) -> list[Event]:
        """Take the next chunk of the stream; return what it revealed."""
        if self._prefix is not None:
            self._prefix += data
            offset = audio_offset(self._prefix)
            if offset is None:
                return []
            data, self._prefix = self._prefix[offset:], None
        raw = self._carry + data if self._carry else data
        usable = len(raw) - len(raw) % self._format.frame_width
        self._carry = raw[usable:]
        self._pending.extend(decode(raw[:usable], self._format))
        window = self._frame_samples * self._format.channels
        events: list[Event] = []
        position = 0
        while len(self._pending) - position >= window:
            events.extend(self._frame(self._pending[position : position + window]))
            position += window
        del self._pending[:position]
        return self._keep(events)

    def finish(self) -> list[Event]:
        """Flush the stream's end: the last partial frame, then every open utterance."""
        flushed: list[Event] = []
        if self._prefix:
            leftover, self._prefix = self._prefix, None
            flushed = self.feed(leftover)
        events: list[Event] = []
        if self._pending:
            events.extend(self._frame(self._pending))
            del self._pending[:]
        for channel in self._channels:
            events.extend(channel.finish())
        return flushed + self._keep(events)

    def pending_duration(self) -> float:
        """Seconds of audio in utterances not yet final, summed over channels."""
        now = self._samples_done / self._format.sample_rate
        return _t(sum(channel.pending_s(now) for channel in self._channels))

    def _frame(self, window: array[int]) -> list[Event]:
        channels = self._format.channels
        count = len(window) // channels
        start = self._samples_done / self._format.sample_rate
        self._samples_done += count
        end = self._samples_done / self._format.sample_rate
        events: list[Event] = []
        for channel in self._channels:
            samples = window[channel.channel :: channels]
            energy = sum(map(operator.mul, samples, samples))
            events.extend(channel.step(start, end, energy >= self._threshold_sq * count))
        return events

    def _keep(self, events: list[Event]) -> list[Event]:
        self.utterances.extend(
            event.utterance
            for event in events
            if isinstance(event, TranscriptEvent) and event.is_final
        )
        return events
