"""The gateway's ingest path: authenticate, de-duplicate, store durably, then acknowledge.

Order for every frame (nothing of a payload is read before its tag verifies):
  1. size checks, then key lookup by the header's device id (`unknown_device`; a malformed
     header is reported as such instead: `truncated`, `bad_version`...);
  2. open_frame: header checks (version, flags, type), then AES-128-CCM verification, then
     decryption (`bad_tag`); the header is parsed once, here;
  3. only uplinks (direction 0) of type "records" are ingested (a reflected ack is
     `wrong_direction`, an uplink of another type `bad_type`);
  4. replay check per (device, key_version, counter) (`replay`, `too_old`; replay.py);
  5. payload decode (an authentic but undecodable payload is stored raw with its error, and
     counted as `malformed_payload`: it is the node's data, so it is kept and acknowledged);
  6. a batch of frames is inserted and committed in ONE transaction;
  7. only then acks are built: per (device, source) one ack frame listing the stored
     counters, sealed with the device key, direction 1, and the gateway's own downlink
     counter (reserved ahead in the database inside the same commit, so it never repeats).

A replayed frame that is authentic and already stored is counted as `replay` and is
acknowledged again: the node re-sends when an ack was lost, and must be told it can drop
the frame. Nothing else about it changes (it is not stored twice).

Every rejection is counted by reason (in memory for this run and cumulatively in the
database) and logged (rate-limited) without key material or payload bytes. No input makes
`handle` raise: unexpected errors are counted as `internal_error` and logged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from tinysense.gateway.registry import KeyCache, Registry
from tinysense.gateway.replay import DEFAULT_WINDOW, NEW, REPLAY, ReplayGuard
from tinysense.gateway.store import Store
from tinysense.uplink.frame import (
    DIR_DOWN, DIR_UP, MAX_FRAME, MIN_FRAME, PTYPE_ACK, PTYPE_RECORDS, TAG_LEN, FrameError,
    open_frame, parse_header, seal,
)
from tinysense.uplink.payload import MAX_ACKS, PayloadError, decode_batch, encode_ack

log = logging.getLogger("tinysense.gateway")

ACK_BLOCK = 1024        # downlink counters reserved per database write
LOG_PER_REASON_S = 5    # at most this many log lines per rejection reason per second
REJECTS_FLUSH_S = 1.0   # rejection counts reach the database at least this often

REASONS = ("truncated", "oversized", "bad_version", "bad_flags", "bad_type", "bad_tag",
           "wrong_direction", "unknown_device", "replay", "too_old", "malformed_payload",
           "bad_encoding", "store_error", "internal_error")


@dataclass(frozen=True, slots=True)
class Accepted:
    """A frame stored by this batch (`duplicate` False) or re-acknowledged (True)."""

    device_id: int
    key_version: int
    counter: int
    ptype: int
    source: str
    received_at: float
    decoded: dict | None
    decode_error: str | None
    duplicate: bool = False


@dataclass(frozen=True)
class Ack:
    """An ack frame to send back to `source` for `device_id`, listing `counters`."""

    source: str
    device_id: int
    counters: tuple[int, ...]
    frame: bytes


def _jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_JSON = json.JSONEncoder(separators=(",", ":"), default=_jsonable, allow_nan=False)


def _finite(value):
    """A copy with NaN/inf floats as None (strict JSON; the raw payload keeps the bits)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_json(decoded: dict) -> str:
    """Strict JSON text for the `decoded` column (SQLite's json functions can read it)."""
    try:
        return _JSON.encode(decoded)
    except ValueError:  # a NaN or infinity from a float32 field
        return _JSON.encode(_finite(decoded))


def decode_payload(ptype: int, plaintext: bytes) -> tuple[dict | None, str | None, str | None]:
    """(decoded dict, its JSON text, error) for an authenticated payload."""
    if ptype != PTYPE_RECORDS:
        return None, None, f"payload type {ptype} is not stored decoded"
    try:
        batch = decode_batch(plaintext)
    except PayloadError as exc:
        return None, None, str(exc) or "PayloadError"
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "undecodable"
        return None, None, f"{type(exc).__name__}: {exc}"
    decoded = {"boot": batch.boot, "dropped_total": batch.dropped_total,
               "base_ms": batch.base_ms, "records": batch.records}
    return decoded, to_json(decoded), None


class Gateway:
    """Ingests uplink frames into a Store; `handle`/`handle_batch` return the acks to send.

    Not thread-safe: one thread owns a Gateway (ingest.IngestLoop feeds it from transports).
    """

    def __init__(self, store: Store, registry: Registry | None = None, *,
                 window: int = DEFAULT_WINDOW, max_age: int | None = None,
                 ack_block: int = ACK_BLOCK, clock: Callable[[], float] = time.time,
                 on_frame: Callable[[Accepted], None] | None = None,
                 decode: bool = True):
        self.store = store
        self.registry = registry or Registry(store.conn)
        self.keys = KeyCache(self.registry)
        self.replay = ReplayGuard(store, window=window, max_age=max_age)
        self.ack_block = ack_block
        self.clock = clock
        self.on_frame = on_frame
        self.decode = decode
        self.last_commit_ok = True
        self._unsaved_rejects: Counter[str] = Counter()  # written with the next commit
        self._rejects_saved_at = time.monotonic()
        self.rejections: Counter[str] = Counter()   # this run
        self.stats: Counter[str] = Counter()        # accepted, duplicate, acks, batches
        self._aead: dict[tuple[int, int], AESCCM] = {}
        self._downlink: dict[tuple[int, int], list[int]] = {}  # -> [next, end)
        self._dropped: dict[int, int] = {}  # device -> highest dropped_total seen
        self._log_second = 0
        self._log_counts: Counter[str] = Counter()

    # -- public API -----------------------------------------------------------------------
    def handle(self, frame: bytes, source: str = "") -> bytes | None:
        """Ingest one frame; return its ack frame, or None when it was rejected."""
        acks = self.handle_batch([(frame, source)])
        return acks[0].frame if acks else None

    def handle_batch(self, items: Sequence[tuple[bytes, str]]) -> list[Ack]:
        """Ingest a batch in one transaction; return the acks to send once it is durable."""
        rows: list[tuple] = []
        accepted: list[tuple] = []  # Accepted's fields
        batch_rejects: Counter[str] = Counter()
        now = self.clock()
        for frame, source in items:
            try:
                reason = self._one(frame, source, now, rows, accepted)
            except Exception:  # never crash on input; count and keep going
                reason = "internal_error"
                self.rejections[reason] += 1
                if self._should_log(reason):
                    log.exception("internal error on a frame from %s (%d bytes)", source,
                                  _safe_len(frame))
            if reason:
                batch_rejects[reason] += 1
        return self._commit(rows, accepted, batch_rejects)

    def flush(self) -> None:
        """Write rejection counts not yet in the database (they ride along with commits,
        or are written at least every REJECTS_FLUSH_S while frames arrive)."""
        if self._unsaved_rejects:
            self._rejects_saved_at = 0.0
            self._commit([], [], Counter())

    def rejection_counts(self) -> dict[str, int]:
        return dict(sorted(self.rejections.items()))

    # -- one frame ------------------------------------------------------------------------
    def _one(self, frame, source: str, now: float, rows: list, accepted: list) -> str | None:
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            return self._reject("bad_encoding", source, None, "transport framing was invalid")
        if len(frame) > MAX_FRAME:  # before copying anything
            return self._reject("oversized", source, None, f"{len(frame)} bytes")
        frame = bytes(frame)
        if len(frame) < MIN_FRAME:
            return self._header_reject(frame, source)
        # The header is parsed once, inside open_frame (before the tag check); the device id
        # is read here only to find the key.
        dev = int.from_bytes(frame[2:6], "big")
        dkey = self.keys.get(dev)
        if dkey is None:
            return self._header_reject(frame, source) or self._reject(
                "unknown_device", source, frame, "not in the registry")
        try:
            header, plaintext = open_frame(dkey.key, frame, self._cipher(dkey))
        except FrameError as exc:
            if exc.reason != "bad_tag":
                return self._reject(exc.reason, source, None, str(exc))
            # The key may have been rotated while we run: re-read it (rate-limited) once.
            fresh = self.keys.refresh(dev)
            if fresh is None or fresh.key_version == dkey.key_version:
                return self._reject("bad_tag", source, frame, "authentication failed")
            dkey = fresh
            try:
                header, plaintext = open_frame(dkey.key, frame, self._cipher(dkey))
            except FrameError:
                return self._reject("bad_tag", source, frame, "authentication failed")
        # Authentic, but only node uplinks of type "records" are ingested: a reflected ack
        # (our own downlink) or another type is refused, without looking at the payload.
        if header.direction != DIR_UP:
            return self._reject("wrong_direction", source, frame, "a downlink frame")
        if header.ptype != PTYPE_RECORDS:
            return self._reject("bad_type", source, frame, f"uplink of type {header.ptype}")
        ctr = header.counter
        verdict = self.replay.check(dev, dkey.key_version, ctr)
        if verdict != NEW:
            if verdict == REPLAY:  # authentic and stored: ack again so the node can drop it
                accepted.append((dev, dkey.key_version, ctr, header.ptype, source, now,
                                 None, None, True))
            return self._reject(verdict, source, frame, "counter already accepted"
                                if verdict == REPLAY else "counter older than max_age")
        if self.decode:
            decoded, text, error = decode_payload(header.ptype, plaintext)
        else:  # store the authenticated plaintext only; `tinysense uplinks` decodes on read
            decoded = text = error = None
        if error is not None:
            self._reject("malformed_payload", source, frame, f"stored raw: {error}")
        elif decoded is not None:
            self._note_dropped(dev, decoded["dropped_total"])
        rows.append((dev, dkey.key_version, ctr, now, header.ptype, source, plaintext, text,
                     error))
        # Marked only once its row is in the batch: a frame marked but not stored would be
        # acknowledged as a duplicate later and never stored.
        self.replay.mark(dev, dkey.key_version, ctr)
        accepted.append((dev, dkey.key_version, ctr, header.ptype, source, now, decoded,
                         error, False))
        return "malformed_payload" if error is not None else None

    def _note_dropped(self, dev: int, total: int) -> None:
        """Warn when a node's cumulative dropped_total grows: it lost frames to a full queue
        (the node's policy: drop the oldest; the count survives on its flash)."""
        prev = self._dropped.get(dev)
        if prev is not None and total <= prev:
            return
        if len(self._dropped) > 100_000:
            self._dropped.clear()
        self._dropped[dev] = total
        if prev is not None:
            self.stats["node_dropped"] += total - prev
            log.warning("device %08x dropped %d frame(s) from its full queue (%d in total)",
                        dev, total - prev, total)

    def _header_reject(self, frame: bytes, source: str) -> str | None:
        """The reason a header is malformed (truncated, bad_version...), or None."""
        try:
            parse_header(frame)
        except FrameError as exc:
            return self._reject(exc.reason, source, None, str(exc))
        return None

    def _cipher(self, dkey) -> AESCCM:
        k = (dkey.device_id, dkey.key_version)
        aead = self._aead.get(k)
        if aead is None:
            if len(self._aead) > 65536:
                self._aead.clear()
            aead = self._aead[k] = AESCCM(dkey.key, tag_length=TAG_LEN)
        return aead

    # -- commit and acks ------------------------------------------------------------------
    def _commit(self, rows: list, accepted: list[tuple],
                batch_rejects: Counter[str]) -> list[Ack]:
        """`accepted` holds Accepted's fields as tuples (cheaper on the hot path)."""
        groups: dict[tuple[int, int, str], list[int]] = {}
        for a in accepted:
            groups.setdefault((a[0], a[1], a[4]), []).append(a[2])
        plan = []  # (device, key_version, source, counters chunk)
        for (dev, kv, source), counters in groups.items():
            if len(counters) == 1:  # the common case with many devices
                plan.append((dev, kv, source, counters))
                continue
            counters = sorted(set(counters))  # the ack lists counters strictly ascending
            for i in range(0, len(counters), MAX_ACKS):
                plan.append((dev, kv, source, counters[i:i + MAX_ACKS]))
        need: Counter[tuple[int, int]] = Counter((dev, kv) for dev, kv, _, _ in plan)
        reserve = [(dev, kv, n) for (dev, kv), n in need.items()
                   if (slot := self._downlink.get((dev, kv))) is None or slot[1] - slot[0] < n]
        self._unsaved_rejects.update(batch_rejects)
        flush = bool(self._unsaved_rejects) and (
            rows or reserve or time.monotonic() - self._rejects_saved_at >= REJECTS_FLUSH_S)
        store = self.store
        try:
            if rows or reserve or flush:
                store.begin()
                if rows:
                    store.insert_frames(rows)
                for dev, kv, n in reserve:
                    # Counters left in the old block are skipped, never reused.
                    span = store.reserve_downlink(dev, kv, max(self.ack_block, n))
                    self._downlink[(dev, kv)] = list(span) if span else [0, 0]
                if self._unsaved_rejects:
                    store.add_rejections(self._unsaved_rejects)
                store.commit()
                self._unsaved_rejects.clear()
                self._rejects_saved_at = time.monotonic()
        except Exception as exc:
            log.error("store commit failed, %d frames not acknowledged: %s", len(rows), exc)
            try:
                store.rollback()
            except Exception:  # noqa: BLE001 - the connection may be unusable; keep going
                pass
            self.replay.reset()
            self._downlink.clear()
            self.rejections["store_error"] += len(accepted)
            self._unsaved_rejects["store_error"] += len(accepted)
            self.last_commit_ok = False
            return []
        self.last_commit_ok = True
        self.replay.committed()
        self.stats["batches"] += 1
        self.stats["accepted"] += len(rows)
        self.stats["duplicate"] += len(accepted) - len(rows)
        acks = []
        for dev, kv, source, counters in plan:
            slot = self._downlink[(dev, kv)]
            if slot[0] >= slot[1]:  # 2^32 acks under this key: it must be rotated
                if self._should_log("ack_counter_exhausted"):
                    log.error("device %08x: no downlink counters left under key version %d; "
                              "frames are stored but not acknowledged until `tinysense "
                              "provision --rotate`", dev, kv)
                continue
            down = slot[0]
            slot[0] += 1
            dkey = self.keys.get(dev)
            if dkey is None or dkey.key_version != kv:
                continue  # rotated between verify and ack: the node re-sends, we re-ack
            frame = seal(dkey.key, dev, down, PTYPE_ACK, encode_ack(counters),
                         direction=DIR_DOWN)
            acks.append(Ack(source, dev, tuple(counters), frame))
        self.stats["acks"] += len(acks)
        if self.on_frame is not None:
            for a in accepted:
                try:
                    self.on_frame(Accepted(*a))
                except Exception:  # a printing callback must not stop ingest
                    log.exception("on_frame callback failed")
        return acks

    # -- rejections -----------------------------------------------------------------------
    def _should_log(self, reason: str) -> bool:
        """At most LOG_PER_REASON_S log lines per reason per second (floods stay readable)."""
        second = int(time.monotonic())
        if second != self._log_second:
            self._log_second = second
            self._log_counts.clear()
        self._log_counts[reason] += 1
        return self._log_counts[reason] <= LOG_PER_REASON_S

    def _reject(self, reason: str, source: str, frame: bytes | None, detail: str) -> str:
        """Count and (rate-limited) log a rejection; `frame` given when its header parsed."""
        self.rejections[reason] += 1
        if self._should_log(reason):
            where = "unparsed frame"
            if frame is not None:
                where = (f"device {int.from_bytes(frame[2:6], 'big'):08x} counter "
                         f"{int.from_bytes(frame[6:10], 'big')}")
            log.info("rejected %s from %s: %s (%s)", reason, source or "?", where, detail)
        return reason


def _safe_len(frame) -> int:
    try:
        return len(frame)
    except Exception:  # noqa: BLE001
        return -1
