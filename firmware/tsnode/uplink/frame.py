"""Uplink frame v1 on the node: seal into one preallocated frame buffer, open acks.

Spec: docs/formats/uplink.md (the host twin is host/tinysense/formats/frame.py).
"""

import struct

from micropython import const

from tsnode.uplink.ccm import CCM

VERSION = const(1)
HEADER_LEN = const(11)
_TAG_LEN = const(8)
MAX_PAYLOAD = const(1024)
_MIN_FRAME = const(19)
_MAX_FRAME = const(1043)
PTYPE_RECORDS = const(1)
PTYPE_ACK = const(2)
PTYPE_OFFER = const(3)  # update offer (downlink, docs/formats/ota.md)
PTYPE_CHUNK = const(4)  # update chunk (downlink)
_DIR_UP = const(0)
DIR_DOWN = const(1)
_HDR = const(">BBIIB")
_NONCE = const(">BII")


class FrameError(ValueError):
    """reason: truncated, oversized, bad_version, bad_flags, bad_type, bad_tag."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def parse_header(frame):
    """(direction, device_id, counter, ptype) after the size/version/flags/type checks."""
    n = len(frame)
    if n < _MIN_FRAME:
        raise FrameError("truncated")
    if n > _MAX_FRAME:
        raise FrameError("oversized")
    version, flags, device_id, counter, ptype = struct.unpack_from(_HDR, frame, 0)
    if version != VERSION:
        raise FrameError("bad_version")
    if flags & 0xFE:
        raise FrameError("bad_flags")
    if ptype < PTYPE_RECORDS or ptype > PTYPE_CHUNK:
        raise FrameError("bad_type")
    return flags, device_id, counter, ptype


class Codec:
    """Seal and open frames for one key and device id.

    seal() returns a memoryview into a buffer owned by the codec: it stays valid only until
    the next seal(); copy it (bytes(...)) to keep it. open() likewise returns a view of
    the codec's plaintext buffer. Nothing is allocated per frame except small views.
    """

    def __init__(self, key, device_id, max_payload=MAX_PAYLOAD):
        # max_payload < 1024 shrinks every buffer here (~8 KB at 1024, ~2.6 KB at 256) for
        # nodes that only send and receive small frames (an app's events, short acks).
        if len(key) != 16:
            raise ValueError("uplink keys are 16 bytes")
        if not 0 < max_payload <= MAX_PAYLOAD:
            raise ValueError("max_payload is 1..1024")
        self.device_id = device_id
        self.max_payload = max_payload
        self._ccm = CCM(key, _TAG_LEN, 13, max_payload, HEADER_LEN)
        self._nonce = bytearray(13)
        self._nonce[9:13] = b"TSv1"
        self._frame = bytearray(HEADER_LEN + max_payload + _TAG_LEN)
        self._fmv = memoryview(self._frame)
        self._hdr = self._fmv[:HEADER_LEN]
        self._body = self._fmv[HEADER_LEN:]
        self._plain = bytearray(max_payload)
        self._pmv = memoryview(self._plain)
        self._rnonce = bytearray(13)
        self._rnonce[9:13] = b"TSv1"

    def seal(self, counter, ptype, plaintext, n=-1, direction=_DIR_UP):
        """Seal plaintext[:n] with this counter; return a view of the frame bytes."""
        if n < 0:
            n = len(plaintext)
        if n > self.max_payload:
            raise ValueError("payload exceeds %d bytes" % self.max_payload)
        struct.pack_into(_HDR, self._frame, 0, VERSION, direction, self.device_id, counter,
                         ptype)
        struct.pack_into(_NONCE, self._nonce, 0, direction, self.device_id, counter)
        m = self._ccm.seal_into(self._nonce, self._hdr, plaintext, self._body, n)
        return self._fmv[:HEADER_LEN + m]

    def open(self, frame):
        """Authenticate any frame for this key: (direction, device_id, counter, ptype, view).

        The device id is NOT checked here (the caller knows what it expects).
        Raises FrameError; the tag is verified before any payload byte is returned.
        """
        flags, device_id, counter, ptype = parse_header(frame)
        if len(frame) - HEADER_LEN - _TAG_LEN > self.max_payload:
            raise FrameError("oversized")  # larger than this codec's buffers
        struct.pack_into(_NONCE, self._rnonce, 0, flags, device_id, counter)
        mv = memoryview(frame)
        n = self._ccm.open_into(self._rnonce, mv[:HEADER_LEN], mv[HEADER_LEN:], self._plain)
        if n < 0:
            raise FrameError("bad_tag")
        return flags, device_id, counter, ptype, self._pmv[:n]
