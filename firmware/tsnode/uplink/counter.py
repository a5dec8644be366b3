"""Frame counter that never repeats for a key, across resets and power cuts.

The store keeps `limit` (every counter below it may have been used) in two slot files,
each a 24-byte record: b"TSC1", seq, limit, boot, key check value, CRC-32. A write goes
to the slot that does NOT hold the newest record, via tmp + rename, so a torn or lost
write leaves the other slot intact. Counters are reserved ahead in blocks: one flash write
per `block` frames (plus one per boot that sends); a power cut skips at most `block`
counters. Spec: docs/formats/uplink.md ("Counter store").
"""

import struct

import cryptolib
from micropython import const

from tsnode.uplink.fsutil import crc32, join, write_atomic

_MAGIC = const(b"TSC1")
_FMT = const(">4sIIII")  # magic, seq, limit, boot, kcv; then crc32 of these 20 bytes
_SLOT_LEN = const(24)
_LAST = const(0xFFFFFFFF)  # limit may reach it; the counter itself stops one below
_DEFAULT_BLOCK = const(64)
_MAX_BLOCK = const(65536)
_SLOT_NAMES = const(("uplink_ctr.a", "uplink_ctr.b"))


class CounterError(Exception):
    pass


def key_check(key):
    """First 4 bytes of AES-ECB(key, zero block) as an int: ties a state to its key."""
    out = bytearray(16)
    cryptolib.aes(key, 1).encrypt(bytes(16), out)
    return struct.unpack_from(">I", out, 0)[0]


def _pack(seq, limit, boot, kcv):
    body = struct.pack(_FMT, _MAGIC, seq, limit, boot, kcv)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


class CounterStore:
    """The two slot files under `root` (the node's "/" by default)."""

    def __init__(self, root="/", block=_DEFAULT_BLOCK):
        if block < 1 or block > _MAX_BLOCK:
            raise ValueError("counter block must be 1..65536")
        self.block = block
        self.paths = (join(root, _SLOT_NAMES[0]), join(root, _SLOT_NAMES[1]))

    def read_slot(self, path):
        """(seq, limit, boot, kcv) stored at path; None when missing; False when present
        but torn or corrupt."""
        try:
            with open(path, "rb") as f:
                data = f.read(_SLOT_LEN + 1)
        except OSError:
            return None
        if len(data) != _SLOT_LEN or data[:4] != _MAGIC:
            return False
        if crc32(data[:20]) & 0xFFFFFFFF != struct.unpack_from(">I", data, 20)[0]:
            return False
        return struct.unpack_from(">IIII", data, 4)

    def newest(self, kcv=None):
        """(slot index, (seq, limit, boot, kcv), damaged) of the valid record with the
        highest seq (among records for this key check value when kcv is given), or None.

        A complete *.tmp record counts too (it was written before its counters were used,
        so it can only raise the limit). `damaged` is True when a slot file exists but is
        unreadable: it may have held a higher limit, so the caller skips ahead.
        """
        best = None
        damaged = False
        for i in (0, 1):
            for path in (self.paths[i], self.paths[i] + ".tmp"):
                rec = self.read_slot(path)
                if rec is False and not path.endswith(".tmp"):
                    damaged = True
                if not rec or (kcv is not None and rec[3] != kcv):
                    continue
                if best is None or rec[0] > best[1][0]:
                    best = (i, rec)
        return None if best is None else (best[0], best[1], damaged)

    def write(self, slot, seq, limit, boot, kcv):
        write_atomic(self.paths[slot], _pack(seq, limit, boot, kcv))

    def create(self, key, force=False):
        """Start the counter at 0 for a NEW key (provisioning). Refuses to reset the state
        of the same key unless force=True (which would risk nonce reuse: do not)."""
        kcv = key_check(key)
        if self.newest(kcv) is not None and not force:
            raise CounterError("a counter state for this key exists; resetting it would "
                               "repeat counters. Provision a new key instead.")
        any_best = self.newest()
        seq = any_best[1][0] + 1 if any_best else 1
        slot = 1 - any_best[0] if any_best else 0
        self.write(slot, seq, 0, 0, kcv)

    def open(self, key):
        return Counter(self, key)


class Counter:
    """take() returns the next never-used counter, persisting reservations ahead."""

    def __init__(self, store, key):
        self._store = store
        self._kcv = key_check(key)
        best = store.newest(self._kcv)
        if best is None:
            raise CounterError(
                "uplink counter state missing or corrupt (%s, %s): refusing to send, a "
                "counter could repeat. Re-provision the device with a new key."
                % store.paths)
        self._slot, (self._seq, limit, boot, _), damaged = best
        if damaged:
            # The other slot may have held up to limit + (that boot's block): skip past any
            # block size this store accepts.
            limit = min(limit + _MAX_BLOCK, _LAST)
        self.damaged = damaged
        self.boot = (boot + 1) & 0xFFFFFFFF
        self.next = limit  # first counter this boot
        self.reserved = limit  # nothing reserved yet: the first take() writes
        self.writes = 0

    def take(self):
        c = self.next
        if c >= _LAST:
            raise CounterError("frame counter exhausted: rotate the device key")
        if c >= self.reserved:
            limit = c + self._store.block
            if limit > _LAST:
                limit = _LAST
            slot = 1 - self._slot
            self._store.write(slot, self._seq + 1, limit, self.boot, self._kcv)
            self._slot = slot
            self._seq += 1
            self.reserved = limit
            self.writes += 1
        self.next = c + 1
        return c
