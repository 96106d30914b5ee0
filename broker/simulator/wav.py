"""RIFF/WAVE: the header of a session's file, and the audio behind a client's own header."""

from __future__ import annotations

import struct

from broker.simulator.pcm import AudioFormat

_FORMAT_TAGS = {"wav/pcm": 1, "wav/alaw": 6, "wav/ulaw": 7}
# A client's header bigger than this is not a header we will wait for.
MAX_HEADER_BYTES = 64 * 1024


def wav_file(audio: bytes, audio_format: AudioFormat) -> bytes:
    """Wrap raw audio in a WAV container describing its encoding, depth, rate and channels."""
    tag = _FORMAT_TAGS[audio_format.encoding]
    fmt = struct.pack(
        "<HHIIHH",
        tag,
        audio_format.channels,
        audio_format.sample_rate,
        audio_format.bytes_per_second,
        audio_format.frame_width,
        audio_format.bit_depth,
    )
    chunks = b""
    if tag == 1:
        chunks += b"fmt " + struct.pack("<I", len(fmt)) + fmt
    else:
        # Non-PCM formats carry cbSize and a fact chunk (the sample count per channel).
        fmt += struct.pack("<H", 0)
        frames = len(audio) // audio_format.frame_width
        chunks += b"fmt " + struct.pack("<I", len(fmt)) + fmt
        chunks += b"fact" + struct.pack("<II", 4, frames)
    chunks += b"data" + struct.pack("<I", len(audio))
    riff_size = 4 + len(chunks) + len(audio)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + audio


def audio_offset(prefix: bytes) -> int | None:
    """Return where audio starts in a stream: 0 without a WAV header, None while undecided."""
    if len(prefix) < 12:
        return None if b"RIFF".startswith(prefix[:4]) else 0
    if prefix[:4] != b"RIFF" or prefix[8:12] != b"WAVE":
        return 0
    position = 12
    while position + 8 <= len(prefix):
        chunk_id = prefix[position : position + 4]
        (size,) = struct.unpack("<I", prefix[position + 4 : position + 8])
        if chunk_id == b"data":
            return position + 8
        position += 8 + size + (size & 1)
    if len(prefix) >= MAX_HEADER_BYTES:
        return 0
    return None
