"""Read and write recording files (.tsrc, docs/formats/recording.md): labelled int16 frames."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysense.errors import TinysenseError
from tinysense.formats import node_consts

# the format's constants are the node reader's (firmware/tsnode/sensors/replay.py)
_NODE = node_consts("tsnode/sensors/replay.py")
MAGIC = _NODE["_MAGIC"]                # b"TSRC"
VERSION = _NODE["_VERSION"]
UNLABELLED = _NODE["_UNLABELLED"]
_HEADER = struct.Struct("<4sBBHHBB")
_RECORD = struct.Struct("<BBHI")
assert (_HEADER.size, _RECORD.size) == (_NODE["_HEADER_SIZE"], _NODE["_RECORD_SIZE"])


@dataclass
class Recordings:
    """The content of one .tsrc file.

    Args:
        rate_hz: frames per second.
        labels: label names; a recording's label is an index into this list.
        items: (label index, int16 array of shape (n_frames, n_channels)) per recording.
    """

    rate_hz: int
    labels: list[str]
    items: list[tuple[int, np.ndarray]] = field(default_factory=list)

    @property
    def n_channels(self) -> int:
        return int(self.items[0][1].shape[1]) if self.items else 0


def encode_recordings(rec: Recordings) -> bytes:
    """The .tsrc bytes of `rec` (every recording must have the same channel count)."""
    n_ch = rec.n_channels
    if not 1 <= n_ch <= 255:
        raise TinysenseError(f"a recording file needs 1..255 channels, got {n_ch}")
    if not 1 <= rec.rate_hz <= 0xFFFF or len(rec.items) > 0xFFFF or len(rec.labels) > 255:
        raise TinysenseError("recording file limits: rate 1..65535 Hz, <= 65535 recordings, "
                             "<= 255 labels")
    out = bytearray(_HEADER.pack(MAGIC, VERSION, n_ch, rec.rate_hz, len(rec.items),
                                 len(rec.labels), 0))
    for name in rec.labels:
        raw = name.encode()
        if len(raw) > 255:
            raise TinysenseError(f"label {name!r} is longer than 255 bytes")
        out += bytes([len(raw)]) + raw
    for label, frames in rec.items:
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != n_ch:
            raise TinysenseError(f"every recording needs shape (frames, {n_ch}), "
                                 f"got {frames.shape}")
        if label != UNLABELLED and not 0 <= label < len(rec.labels):
            raise TinysenseError(f"label index {label} is outside the label table")
        lo, hi = int(frames.min(initial=0)), int(frames.max(initial=0))
        if lo < -32768 or hi > 32767:
            raise TinysenseError(f"samples must fit int16, got {lo}..{hi}")
        out += _RECORD.pack(label, 0, 0, frames.shape[0])
        out += frames.astype("<i2").tobytes()
    return bytes(out)


def decode_recordings(data: bytes) -> Recordings:
    """Parse .tsrc bytes; raises TinysenseError on a malformed file."""
    if len(data) < _HEADER.size:
        raise TinysenseError("recording file is shorter than its 12-byte header")
    magic, version, n_ch, rate, n_rec, n_lab, _ = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise TinysenseError(f"not a recording file (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise TinysenseError(f"recording file version {version} is not supported "
                             f"(this tinysense reads version {VERSION})")
    pos = _HEADER.size
    labels = []
    for _ in range(n_lab):
        if pos >= len(data):
            raise TinysenseError("recording file ends inside its label table")
        n = data[pos]
        labels.append(bytes(data[pos + 1:pos + 1 + n]).decode())
        pos += 1 + n
    rec = Recordings(rate_hz=rate, labels=labels)
    for i in range(n_rec):
        if pos + _RECORD.size > len(data):
            raise TinysenseError(f"recording file ends inside record {i} header")
        label, _, _, n_frames = _RECORD.unpack_from(data, pos)
        pos += _RECORD.size
        size = n_frames * n_ch * 2
        if pos + size > len(data):
            raise TinysenseError(f"recording file ends inside record {i} samples")
        frames = np.frombuffer(data, "<i2", n_frames * n_ch, pos).reshape(n_frames, n_ch)
        rec.items.append((label, frames.astype(np.int16)))
        pos += size
    if pos != len(data):
        raise TinysenseError(f"recording file has {len(data) - pos} unexpected trailing bytes")
    return rec


def write_recordings(path: str | Path, rec: Recordings) -> int:
    """Write `rec` to `path`; returns the file size in bytes."""
    data = encode_recordings(rec)
    Path(path).write_bytes(data)
    return len(data)


def read_recordings(path: str | Path) -> Recordings:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TinysenseError(f"cannot read recording file {path}: {exc.strerror}") from None
    return decode_recordings(data)
