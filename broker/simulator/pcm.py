"""Decoding of Gladia's live audio encodings into integer samples, at C speed where it matters."""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass


@dataclass(frozen=True)
class AudioFormat:
    """The layout of a session's raw audio stream."""

    encoding: str
    bit_depth: int
    sample_rate: int
    channels: int

    @property
    def sample_width(self) -> int:
        """Bytes per sample of one channel."""
        return self.bit_depth // 8

    @property
    def frame_width(self) -> int:
        """Bytes per sample frame (one sample of every channel)."""
        return self.sample_width * self.channels

    @property
    def bytes_per_second(self) -> int:
        """Bytes of audio per second of recording."""
        return self.frame_width * self.sample_rate

    @property
    def full_scale(self) -> int:
        """The magnitude of a full-scale sample once decoded."""
        if self.encoding != "wav/pcm":
            return 32768
        return {8: 128, 16: 32768, 24: 1 << 31, 32: 1 << 31}[self.bit_depth]


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)) - 0x84
    return -magnitude if code & 0x80 else magnitude


def _alaw_to_linear(code: int) -> int:
    code ^= 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (
        (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return magnitude if code & 0x80 else -magnitude


ULAW_TABLE = tuple(_ulaw_to_linear(code) for code in range(256))
ALAW_TABLE = tuple(_alaw_to_linear(code) for code in range(256))


def _byte_tables(table: tuple[int, ...]) -> tuple[bytes, bytes]:
    unsigned = [value & 0xFFFF for value in table]
    return bytes(v & 0xFF for v in unsigned), bytes(v >> 8 for v in unsigned)


_COMPANDED = {"wav/ulaw": _byte_tables(ULAW_TABLE), "wav/alaw": _byte_tables(ALAW_TABLE)}
# Flipping the top bit turns unsigned 8-bit WAV samples into signed ones centred on zero.
_UNSIGNED_TO_SIGNED = bytes(value ^ 0x80 for value in range(256))


def decode(data: bytes, audio_format: AudioFormat) -> array[int]:
    """Decode whole sample frames of raw audio into interleaved signed integers."""
    if audio_format.encoding in _COMPANDED:
        low, high = _COMPANDED[audio_format.encoding]
        wide = bytearray(len(data) * 2)
        wide[0::2] = data.translate(low)
        wide[1::2] = data.translate(high)
        return _native(array("h", wide))
    if audio_format.bit_depth == 8:
        return array("b", data.translate(_UNSIGNED_TO_SIGNED))
    if audio_format.bit_depth == 16:
        return _native(array("h", data))
    if audio_format.bit_depth == 24:
        # Shift each 3-byte sample into the top of a 32-bit word, which keeps its sign.
        count = len(data) // 3
        wide = bytearray(count * 4)
        wide[1::4] = data[0::3]
        wide[2::4] = data[1::3]
        wide[3::4] = data[2::3]
        return _native(array("i", wide))
    return _native(array("i", data))


def _native(samples: array[int]) -> array[int]:
    if sys.byteorder == "big":
        samples.byteswap()
    return samples
