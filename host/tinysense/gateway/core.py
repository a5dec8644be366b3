"""The gateway's ingest path: authenticate, de-duplicate, store durably, then acknowledge.

Order for every frame (nothing of a payload is read before its tag verifies):
  1. size checks, then key lookup by the header's device id (`unknown_device`; a malformed
     header is reported as such instead: `truncated`, `bad_version`...);
  2. header checks (version, flags, type; parsed once), then AES-128-CCM verification and
     decryption in one call with the device key's cached AESCCM object (`bad_tag`);
  3. only uplinks (direction 0) of type "records" are ingested (a reflected ack is
     `wrong_direction`, an uplink of another type `bad_type`);
  4. replay check per (device, key_version, counter) (`replay`, `too_old`; replay.py);
  5. payload decode to JSON text (records_json, falling back to the strict decoder; an
     authentic but undecodable payload is stored raw with its error, and counted as
     `malformed_payload`: it is the node's data, so it is kept and acknowledged);
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

import datetime as dt
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from tinysense.gateway.registry import KeyCache, Registry
from tinysense.gateway.replay import DEFAULT_WINDOW, NEW, REPLAY, ReplayGuard
from tinysense.gateway.store import Store
from tinysense.gateway.updates import UpdateQueue, UpdateSender
from tinysense.formats.frame import (
    DIR_DOWN, DIR_UP, FRAME_VERSION, HEADER_LEN, HEADER_STRUCT, MAX_FRAME, MIN_FRAME,
    PTYPE_ACK, PTYPE_RECORDS, PTYPES, TAG_LEN, FrameError, header_nonce, parse_header,
    seal_with,
)
from tinysense.formats.payload import MAX_ACKS, PayloadError, decode_batch, encode_ack
from tinysense.uplink.records_json import records_json

log = logging.getLogger("tinysense.gateway")

_HEADER = HEADER_STRUCT

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


def iso(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds (the JSON readers' `received_at`)."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds")


def decode_payload(ptype: int, plaintext: bytes) -> tuple[dict | None, str | None, str | None]:
    """(decoded dict, its JSON text, error) for an authenticated payload (strict decoder)."""
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


def decode_to_json(plaintext: bytes) -> tuple[str | None, int | None, str | None]:
    """(JSON text, dropped_total, error) for an authenticated records payload.

    The ingest path: `records_json` formats a well-formed payload straight to the same text
    `decode_payload` makes; anything it does not take goes through the strict decoder,
    which also gives the error text.
    """
    try:
        fast = records_json(plaintext)
    except Exception:  # noqa: BLE001 - unusual input: the strict decoder decides
        fast = None
    if fast is not None:
        return fast[0], fast[1], None
    decoded, text, error = decode_payload(PTYPE_RECORDS, plaintext)
    return text, None if decoded is None else decoded["dropped_total"], error


def stored_decoded(ptype: int, payload: bytes, decoded: str | None,
                   decode_error: str | None) -> tuple[dict | None, str | None]:
    """(decoded dict, error) of a stored frame: its `decoded` JSON, or the payload decoded
    now when it was stored raw (`--decode-on-read`)."""
    if decoded:
        return json.loads(decoded), decode_error
    if decode_error is not None:
        return None, decode_error
    got, _, error = decode_payload(ptype, payload)
    return got, error


class Gateway:
    """Ingests uplink frames into a Store; `handle`/`handle_batch` return the acks to send.

    Not thread-safe: one thread owns a Gateway (ingest.IngestLoop feeds it from transports).
    """

    def __init__(self, store: Store, registry: Registry | None = None, *,
                 window: int = DEFAULT_WINDOW, max_age: int | None = None,
                 ack_block: int = ACK_BLOCK, clock: Callable[[], float] = time.time,
                 on_frame: Callable[[Accepted], None] | None = None,
                 on_commit: Callable[[], None] | None = None,
                 decode: bool = True, updates: bool = True):
        self.store = store
        # over-the-air updates queued by `tinysense ota push` go out after a device's frames
        self.updates = UpdateSender(UpdateQueue(store.conn)) if updates else None
        self.registry = registry or Registry(store.conn)
        self.keys = KeyCache(self.registry)
        self.replay = ReplayGuard(store, window=window, max_age=max_age)
        self.ack_block = ack_block
        self.clock = clock
        self.on_frame = on_frame
        # called after each commit that stored frames, before their acks are built: it must
        # only signal (the MQTT publisher reads the new frames from the store by itself)
        self.on_commit = on_commit
        self.decode = decode
        self.last_commit_ok = True
        self._unsaved_rejects: Counter[str] = Counter()  # written with the next commit
        # (device, reason) of rejected frames whose header names a registered device
        self._unsaved_dev_rejects: Counter[tuple[int, str]] = Counter()
        self._reject_dev: int | None = None   # set by _reject: that device, or None
        self._rejects_saved_at = time.monotonic()
        self.rejections: Counter[str] = Counter()   # this run
        self.stats: Counter[str] = Counter()        # accepted, duplicate, acks, batches
        # device -> (key_version, AESCCM): the key cache's positive entries with their
        # cipher object made once, used to open frames and seal acks. Changed only where
        # self.keys is re-read (_set_key), so it never holds a key the cache dropped.
        self._ciphers: dict[int, tuple[int, AESCCM]] = {}
        self._generation = self.keys.poll()   # dropped with the key cache (registry changed)
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
        groups: dict[tuple[int, int, str], list[int]] = {}  # counters to ack
        accepted: list[tuple] | None = [] if self.on_frame is not None else None
        batch_rejects: Counter[str] = Counter()
        now = self.clock()
        if self.keys.poll() != self._generation:   # rotated or removed by another process
            self._ciphers.clear()
            self._generation = self.keys.generation
        one = self._one
        for frame, source in items:
            try:
                reason = one(frame, source, now, rows, groups, accepted)
            except Exception:  # never crash on input; count and keep going
                reason = "internal_error"
                self._reject_dev = None
                self.rejections[reason] += 1
                if self._should_log(reason):
                    log.exception("internal error on a frame from %s (%d bytes)", source,
                                  _safe_len(frame))
            if reason:
                batch_rejects[reason] += 1
                if self._reject_dev is not None:
                    self._unsaved_dev_rejects[(self._reject_dev, reason)] += 1
        return self._commit(rows, groups, batch_rejects.get(REPLAY, 0), accepted,
                            batch_rejects)

    def flush(self) -> None:
        """Write rejection counts not yet in the database (they ride along with commits,
        or are written at least every REJECTS_FLUSH_S while frames arrive)."""
        if self._unsaved_rejects:
            self._rejects_saved_at = 0.0
            self._commit([], {}, 0, None, Counter())

    def rejection_counts(self) -> dict[str, int]:
        return dict(sorted(self.rejections.items()))

    # -- one frame ------------------------------------------------------------------------
    def _one(self, frame, source: str, now: float, rows: list, groups: dict,
             accepted: list | None) -> str | None:
        if type(frame) is not bytes:
            if not isinstance(frame, (bytes, bytearray, memoryview)):
                return self._reject("bad_encoding", source, None,
                                    "transport framing was invalid")
            if len(frame) > MAX_FRAME:  # before copying anything
                return self._reject("oversized", source, None, f"{len(frame)} bytes")
            frame = bytes(frame)
        size = len(frame)
        if size > MAX_FRAME:
            return self._reject("oversized", source, None, f"{size} bytes")
        if size < MIN_FRAME:
            return self._header_reject(frame, source)
        # The header, checked before the key is looked up (the same checks as parse_header,
        # which gives the reason when one fails).
        version, flags, dev, ctr, ptype = _HEADER.unpack_from(frame, 0)
        if version != FRAME_VERSION or flags & 0xFE or ptype not in PTYPES:
            return self._header_reject(frame, source)
        cached = self._ciphers.get(dev)
        if cached is None:
            cached = self._set_key(dev, self.keys.get(dev))
            if cached is None:
                return self._reject("unknown_device", source, frame, "not in the registry")
        kv, aead = cached
        header = frame[:HEADER_LEN]
        nonce = header_nonce(header)
        # Verify the tag, then decrypt (one call; nothing of the payload is used before).
        try:
            plaintext = aead.decrypt(nonce, frame[HEADER_LEN:], header)
        except InvalidTag:
            # The key may have been rotated while we run: re-read it (rate-limited) once.
            fresh = self._set_key(dev, self.keys.refresh(dev))
            if fresh is None or fresh[0] == kv:
                return self._reject("bad_tag", source, frame, "authentication failed")
            kv, aead = fresh
            try:
                plaintext = aead.decrypt(nonce, frame[HEADER_LEN:], header)
            except InvalidTag:
                return self._reject("bad_tag", source, frame, "authentication failed")
        # Authentic, but only node uplinks of type "records" are ingested: a reflected ack
        # (our own downlink) or another type is refused, without looking at the payload.
        if flags != DIR_UP:
            return self._reject("wrong_direction", source, frame, "a downlink frame")
        if ptype != PTYPE_RECORDS:
            return self._reject("bad_type", source, frame, f"uplink of type {ptype}")
        verdict = self.replay.check(dev, kv, ctr)
        if verdict != NEW:
            if verdict == REPLAY:  # authentic and stored: ack again so the node can drop it
                groups.setdefault((dev, kv, source), []).append(ctr)
                if accepted is not None:
                    accepted.append((dev, kv, ctr, ptype, source, now, None, None, True))
                return self._reject(REPLAY, source, frame, "counter already accepted")
            return self._reject(verdict, source, frame, "counter older than max_age")
        if self.decode:
            text, dropped, error = decode_to_json(plaintext)
            if error is not None:
                self._reject("malformed_payload", source, frame, f"stored raw: {error}")
            elif (prev := self._dropped.get(dev)) is None or dropped > prev:
                self._note_dropped(dev, dropped, prev)
        else:  # store the authenticated plaintext only; `tinysense uplinks` decodes on read
            text = error = None
        rows.append((dev, kv, ctr, now, ptype, source, plaintext, text, error))
        # Marked only once its row is in the batch: a frame marked but not stored would be
        # acknowledged as a duplicate later and never stored.
        self.replay.mark(dev, kv, ctr)
        group = groups.get(key := (dev, kv, source))
        if group is None:
            groups[key] = [ctr]
        else:
            group.append(ctr)
        if accepted is not None:
            accepted.append((dev, kv, ctr, ptype, source, now, plaintext, error, False))
        return None if error is None else "malformed_payload"

    def _set_key(self, dev: int, dkey) -> tuple[int, AESCCM] | None:
        """Record what the key cache now says about `dev`: (key_version, cipher) or None."""
        if dkey is None:
            self._ciphers.pop(dev, None)
            return None
        cached = self._ciphers.get(dev)
        if cached is None or cached[0] != dkey.key_version:
            if len(self._ciphers) > 65536:
                self._ciphers.clear()
            cached = self._ciphers[dev] = (dkey.key_version,
                                           AESCCM(dkey.key, tag_length=TAG_LEN))
        return cached

    def _note_dropped(self, dev: int, total: int, prev: int | None) -> None:
        """Warn when a node's cumulative dropped_total grows: it lost frames to a full queue
        (the node's policy: drop the oldest; the count survives on its flash)."""
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

    def _accepted(self, a: tuple) -> Accepted:
        """The Accepted for on_frame (decoded again here: only callers that print pay)."""
        dev, kv, ctr, ptype, source, now, plaintext, error, duplicate = a
        decoded = None
        if not duplicate and error is None and self.decode:
            decoded = decode_payload(ptype, plaintext)[0]
        return Accepted(dev, kv, ctr, ptype, source, now, decoded, error, duplicate)

    # -- commit and acks ------------------------------------------------------------------
    def _commit(self, rows: list, groups: dict[tuple[int, int, str], list[int]],
                duplicates: int, accepted: list[tuple] | None,
                batch_rejects: Counter[str]) -> list[Ack]:
        """Store `rows` in one transaction, then seal one ack per (device, source) group."""
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
                if self._unsaved_dev_rejects:
                    store.add_device_rejections(self._unsaved_dev_rejects)
                store.commit()
                self._unsaved_rejects.clear()
                self._unsaved_dev_rejects.clear()
                self._rejects_saved_at = time.monotonic()
        except Exception as exc:
            log.error("store commit failed, %d frames not acknowledged: %s", len(rows), exc)
            try:
                store.rollback()
            except Exception:  # noqa: BLE001 - the connection may be unusable; keep going
                pass
            self.replay.reset()
            self._downlink.clear()
            self.rejections["store_error"] += len(rows) + duplicates
            self._unsaved_rejects["store_error"] += len(rows) + duplicates
            self.last_commit_ok = False
            return []
        self.last_commit_ok = True
        self.replay.committed()
        self.stats["batches"] += 1
        self.stats["accepted"] += len(rows)
        self.stats["duplicate"] += duplicates
        if rows and self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:  # noqa: BLE001 - a consumer must not stop ingest
                if self._should_log("on_commit"):
                    log.exception("on_commit hook failed")
        acks = []
        ciphers = self._ciphers
        downlink = self._downlink
        for dev, kv, source, counters in plan:
            slot = downlink[(dev, kv)]
            if slot[0] >= slot[1]:  # 2^32 acks under this key: it must be rotated
                if self._should_log("ack_counter_exhausted"):
                    log.error("device %08x: no downlink counters left under key version %d; "
                              "frames are stored but not acknowledged until `tinysense "
                              "provision --rotate`", dev, kv)
                continue
            down = slot[0]
            slot[0] += 1
            cached = ciphers.get(dev)
            if cached is None or cached[0] != kv:
                continue  # rotated between verify and ack: the node re-sends, we re-ack
            frame = seal_with(cached[1], dev, down, PTYPE_ACK, encode_ack(counters), DIR_DOWN)
            acks.append(Ack(source, dev, tuple(counters), frame))
        self.stats["acks"] += len(acks)
        if self.updates is not None and plan:
            acks += self._update_downlinks(rows, plan)
        if accepted:
            for a in accepted:
                try:
                    self.on_frame(self._accepted(a))
                except Exception:  # a printing callback must not stop ingest
                    log.exception("on_frame callback failed")
        return acks

    def _update_downlinks(self, rows: list, plan: list) -> list[Ack]:
        """Offers and chunks for devices with an update in progress, after their acks."""
        sender = self.updates
        try:
            sender.refresh()
            if not sender.active():   # the common case: no update anywhere, nothing to do
                return []
            out = []
            for dev, kv, source in {(d, k, s) for d, k, s, _ in plan}:
                if not sender.wants(dev):
                    continue
                payloads = sender.downlinks(dev, [r[6] for r in rows if r[0] == dev])
                cached = self._ciphers.get(dev)
                if not payloads or cached is None or cached[0] != kv:
                    continue
                slot = self._downlink.get((dev, kv))
                if slot is None or slot[1] - slot[0] < len(payloads):
                    store = self.store
                    store.begin()
                    span = store.reserve_downlink(dev, kv, max(self.ack_block, len(payloads)))
                    store.commit()
                    slot = self._downlink[(dev, kv)] = list(span) if span else [0, 0]
                    if slot[1] - slot[0] < len(payloads):
                        continue
                for ptype, payload in payloads:
                    frame = seal_with(cached[1], dev, slot[0], ptype, payload, DIR_DOWN)
                    slot[0] += 1
                    out.append(Ack(source, dev, (), frame))
            self.stats["update_frames"] += len(out)
            return out
        except Exception:  # an update must never stop ingest or its acks
            log.exception("over-the-air update downlinks failed")
            return []

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
        dev = None if frame is None else int.from_bytes(frame[2:6], "big")
        self._reject_dev = dev if dev in self._ciphers else None   # registered devices only
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
