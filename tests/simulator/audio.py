"""Speech-like test audio: tone bursts of varying loudness between silences, in every encoding."""

from __future__ import annotations

import bisect
import functools
import math
import struct
from collections.abc import Sequence

from broker.simulator.pcm import ALAW_TABLE, ULAW_TABLE

# A segment is (seconds, amplitude from 0 to 1); amplitude 0 is silence.
Segment = tuple[float, float]
SPEECH: list[Segment] = [
    (0.4, 0),
    (1.2, 0.5),
    (0.5, 0),
    (0.8, 0.25),
    (0.4, 0),
    (0.6, 0.7),
    (0.5, 0),
]


def samples(
    segments: Sequence[Segment], sample_rate: int = 16000, frequency: float = 440.0
) -> list[float]:
    """Samples in [-1, 1] for a list of segments."""
    out: list[float] = []
    for seconds, amplitude in segments:
        start = len(out)
        for index in range(round(seconds * sample_rate)):
            phase = 2 * math.pi * frequency * (start + index) / sample_rate
            out.append(amplitude * math.sin(phase))
    return out


@functools.cache
def _ordered(table: tuple[int, ...]) -> tuple[list[int], list[int]]:
    pairs = sorted((value, code) for code, value in enumerate(table))
    return [value for value, _ in pairs], [code for _, code in pairs]


def _nearest_code(table: tuple[int, ...], value: int) -> int:
    values, codes = _ordered(table)
    position = min(bisect.bisect_left(values, value), len(values) - 1)
    return codes[position]


def encode(values: Sequence[float], encoding: str = "wav/pcm", bit_depth: int = 16) -> bytes:
    """Encode samples in [-1, 1] as one channel of raw audio."""
    if encoding in ("wav/alaw", "wav/ulaw"):
        table = ALAW_TABLE if encoding == "wav/alaw" else ULAW_TABLE
        cache: dict[int, int] = {}
        codes = bytearray()
        for value in values:
            level = round(value * 32000)
            if level not in cache:
                cache[level] = _nearest_code(table, level)
            codes.append(cache[level])
        return bytes(codes)
    if bit_depth == 8:
        return bytes(min(255, round(v * 127) + 128) for v in values)
    if bit_depth == 16:
        return struct.pack(f"<{len(values)}h", *(round(v * 32767) for v in values))
    if bit_depth == 24:
        return b"".join(round(v * 8388607).to_bytes(3, "little", signed=True) for v in values)
    return struct.pack(f"<{len(values)}i", *(round(v * 2147483647) for v in values))


def interleave(channels: Sequence[bytes], sample_width: int) -> bytes:
    """Interleave equally long single-channel streams sample by sample."""
    count = len(channels[0]) // sample_width
    out = bytearray()
    for index in range(count):
        for channel in channels:
            out += channel[index * sample_width : (index + 1) * sample_width]
    return bytes(out)


def speech(
    segments: Sequence[Segment] = SPEECH,
    sample_rate: int = 16000,
    encoding: str = "wav/pcm",
    bit_depth: int = 16,
) -> bytes:
    """Mono speech-like audio."""
    return encode(samples(segments, sample_rate), encoding, bit_depth)


def chunks(audio: bytes, size: int) -> list[bytes]:
    """Split audio into chunks of ``size`` bytes (the last may be shorter)."""
    return [audio[i : i + size] for i in range(0, len(audio), size)]


def silence_pcm16(seconds: float, sample_rate: int = 16000, channels: int = 1) -> bytes:
    """Silent 16-bit PCM."""
    return b"\x00\x00" * round(seconds * sample_rate) * channels
