"""Uplink frame v1: header (the CCM associated data), AES-128-CCM seal and open.

Layout and nonce are fixed by docs/formats/uplink.md; the node implements the same in
firmware/tsnode/uplink/frame.py and both are tested against tests/vectors/uplink/.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

FRAME_VERSION = 0x01
HEADER_LEN = 11
TAG_LEN = 8
MAX_PAYLOAD = 1024
MIN_FRAME = HEADER_LEN + TAG_LEN
MAX_FRAME = HEADER_LEN + MAX_PAYLOAD + TAG_LEN
NONCE_SUFFIX = b"TSv1"
PTYPE_RECORDS = 1
PTYPE_ACK = 2
PTYPE_OFFER = 3  # update offer, downlink (docs/formats/ota.md); tinysense.formats.ota checks
PTYPE_CHUNK = 4  # update chunk, downlink                        these against the node's
PTYPES = (PTYPE_RECORDS, PTYPE_ACK, PTYPE_OFFER, PTYPE_CHUNK)
DIR_UP = 0
DIR_DOWN = 1

_HEADER = HEADER_STRUCT = struct.Struct(">BBIIB")  # version, flags, device id, counter, ptype

REASONS = ("truncated", "oversized", "bad_version", "bad_flags", "bad_type", "bad_tag")


class FrameError(ValueError):
    """A frame that cannot be accepted; `reason` is one of REASONS (a stable counter name)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Header:
    version: int
    direction: int
    device_id: int
    counter: int
    ptype: int

    def pack(self) -> bytes:
        return _HEADER.pack(self.version, self.direction, self.device_id, self.counter,
                            self.ptype)


def make_nonce(direction: int, device_id: int, counter: int) -> bytes:
    """The 13-byte CCM nonce: direction(1) | device id(4) | counter(4) | b"TSv1"."""
    return struct.pack(">BII", direction, device_id, counter) + NONCE_SUFFIX


def parse_header(frame: bytes) -> Header:
    """Check sizes, version, flags and payload type (no key needed); return the header."""
    n = len(frame)
    if n < MIN_FRAME:
        raise FrameError("truncated", f"{n} bytes, a frame has at least {MIN_FRAME}")
    if n > MAX_FRAME:
        raise FrameError("oversized", f"{n} bytes, a frame has at most {MAX_FRAME}")
    version, flags, device_id, counter, ptype = _HEADER.unpack_from(frame, 0)
    if version != FRAME_VERSION:
        raise FrameError("bad_version", f"version {version}, expected {FRAME_VERSION}")
    if flags & 0xFE:
        raise FrameError("bad_flags", f"flags 0x{flags:02x} has reserved bits set")
    if ptype not in PTYPES:
        raise FrameError("bad_type", f"payload type {ptype}")
    return Header(version, flags & 1, device_id, counter, ptype)


def _check_key(key: bytes) -> None:
    if len(key) != 16:
        raise ValueError("uplink keys are 16 bytes (AES-128)")


def seal(key: bytes, device_id: int, counter: int, ptype: int, plaintext: bytes,
         direction: int = DIR_UP) -> bytes:
    """Encrypt and authenticate `plaintext` into a frame.

    Args:
        key: the 16-byte device key.
        device_id: uint32 device id.
        counter: uint32 frame counter; the caller guarantees it never repeats per key and
            direction.
        ptype: PTYPE_RECORDS or PTYPE_ACK.
        plaintext: at most MAX_PAYLOAD bytes.
        direction: DIR_UP (node -> gateway) or DIR_DOWN (gateway -> node).
    """
    _check_key(key)
    if direction not in (DIR_UP, DIR_DOWN):
        raise ValueError("direction is 0 (up) or 1 (down)")
    if ptype not in PTYPES:
        raise ValueError(f"unknown payload type {ptype}")
    if not 0 <= device_id <= 0xFFFFFFFF or not 0 <= counter <= 0xFFFFFFFF:
        raise ValueError("device id and counter are uint32")
    if len(plaintext) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(plaintext)} bytes exceeds {MAX_PAYLOAD}")
    return seal_with(AESCCM(key, tag_length=TAG_LEN), device_id, counter, ptype,
                     bytes(plaintext), direction)


def seal_with(aead: AESCCM, device_id: int, counter: int, ptype: int, plaintext: bytes,
              direction: int = DIR_UP) -> bytes:
    """`seal` with an AESCCM object already made for the key (tag_length=TAG_LEN).

    For hot paths (the gateway's acks): no argument checks beyond what struct.pack does,
    so the caller passes valid values.
    """
    header = _HEADER.pack(FRAME_VERSION, direction, device_id, counter, ptype)
    return header + aead.encrypt(header_nonce(header), plaintext, header)


def header_nonce(header: bytes) -> bytes:
    """The nonce of a frame whose header is valid (flags == direction): header bytes 1..9
    are direction | device id | counter, exactly make_nonce's first 9 bytes."""
    return header[1:10] + NONCE_SUFFIX


def open_frame(key: bytes, frame: bytes, aead: AESCCM | None = None) -> tuple[Header, bytes]:
    """Authenticate `frame` with `key`, then return (header, plaintext).

    Nothing of the payload is parsed before the tag checks. `aead` lets a caller reuse an
    AESCCM object made for this key (saves its set-up on hot paths).
    Raises FrameError("bad_tag") on any forgery or wrong key.
    """
    header = parse_header(frame)
    frame = bytes(frame)
    if aead is None:
        _check_key(key)
        aead = AESCCM(key, tag_length=TAG_LEN)
    nonce = make_nonce(header.direction, header.device_id, header.counter)
    try:
        plaintext = aead.decrypt(nonce, frame[HEADER_LEN:], frame[:HEADER_LEN])
    except InvalidTag:
        raise FrameError("bad_tag", "authentication failed") from None
    return header, plaintext
