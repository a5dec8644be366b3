"""Over-the-air updates at the gateway: the queue of updates per device, and the downlinks
that carry them (docs/formats/ota.md).

`tinysense ota push` queues a bundle (UpdateQueue.push); a running gateway sends the offer
and then the chunks in reply to the device's own frames (a node that is offline gets its
update when it next sends), from the offset the node reports, a few chunks per frame; the
node's OTA events (update id, bytes held, step) move the update's state:

    pending -> (node: active) active -> (node: confirmed) done
            -> (node: stale, bad_bundle, selftest_failed, too_big, rolled_back) failed
    pending/active -> (ota cancel) cancelling -> (node: cancelled, or never offered) cancelled
    pending -> (a newer push for the device) superseded

Table `updates` in the gateway database (gateway/store.py creates it).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass

from tinysense.errors import TinysenseError
from tinysense.formats import ota
from tinysense.formats.payload import PayloadError, decode_batch

CHUNKS_PER_FRAME = 4   # chunks sent in reply to one frame of the node
DEFAULT_CHUNK = 240    # fits the app's default max_payload (256) with the 9-byte chunk header
REFRESH_S = 1.0        # how often a running gateway re-reads the queue (pushes, cancels)

SCHEMA = """
CREATE TABLE IF NOT EXISTS updates(
    device_id INTEGER NOT NULL,
    update_id INTEGER NOT NULL,
    created REAL NOT NULL,
    length INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    bundle BLOB NOT NULL,
    model_sha256 TEXT NOT NULL,
    label TEXT NOT NULL,
    state TEXT NOT NULL,
    node_at INTEGER,
    node_step INTEGER,
    updated REAL NOT NULL,
    PRIMARY KEY(device_id, update_id)
);
"""

_TERMINAL = {"stale", "bad_bundle", "selftest_failed", "too_big", "rolled_back"}
_SENDING = ("pending", "cancelling")


@dataclass(frozen=True)
class Update:
    device_id: int
    update_id: int
    created: float
    length: int
    sha256: str
    chunk: int
    model_sha256: str
    label: str
    state: str
    node_at: int | None
    node_step: int | None
    updated: float

    @property
    def step(self) -> str | None:
        return None if self.node_step is None else ota.STEPS.get(self.node_step,
                                                                 str(self.node_step))

    def to_dict(self) -> dict:
        return {"device": self.device_id, "update_id": self.update_id,
                "label": self.label, "state": self.state, "step": self.step,
                "bytes": self.length, "received": self.node_at or 0,
                "progress": round((self.node_at or 0) / self.length, 4),
                "bundle_sha256": self.sha256, "model_sha256": self.model_sha256,
                "created": self.created, "updated": self.updated}


_COLS = ("device_id, update_id, created, length, sha256, chunk, model_sha256, label, state, "
         "node_at, node_step, updated")


def ota_events(plaintext: bytes) -> list[tuple[int, str, int]]:
    """The OTA events of one records payload: (update id, "step"|"at", value), in order."""
    try:
        records = decode_batch(plaintext).records
    except PayloadError:
        return []
    out, uid = [], None
    for r in records:
        if r.get("type") != "event":
            continue
        code, value = r["code"], r["value"]
        if code == ota.EV_OTA_ID:
            uid = value & 0xFFFFFFFF
        elif uid is not None and code == ota.EV_OTA_STEP:
            out.append((uid, "step", value))
        elif uid is not None and code == ota.EV_OTA_AT:
            out.append((uid, "at", value))
    return out


def _active(ups: list[Update]) -> Update | None:
    """The update a device runs, as it last said (its newest active or done one)."""
    return next((u for u in reversed(ups) if u.state in ("active", "done")), None)


def active_models(conn: sqlite3.Connection) -> dict[int, dict]:
    """device -> the model of its active update {update_id, model_sha256, label,
    confirmed}; read only (no table is created: a database without OTA gives {})."""
    try:
        rows = conn.execute(f"SELECT {_COLS} FROM updates WHERE state IN ('active','done') "
                            "ORDER BY device_id, update_id").fetchall()
    except sqlite3.OperationalError:
        return {}
    out: dict[int, dict] = {}
    for row in rows:   # ascending update_id: the last one per device wins
        u = Update(*row)
        out[u.device_id] = {"update_id": u.update_id, "model_sha256": u.model_sha256,
                            "label": u.label, "confirmed": u.state == "done"}
    return out


class UpdateQueue:
    """The updates table of one gateway database connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        conn.executescript(SCHEMA)

    # -- the CLI's side -------------------------------------------------------------------
    def push(self, device_id: int, bundle: bytes, *, chunk: int = DEFAULT_CHUNK,
             label: str = "") -> Update:
        """Queue a bundle for a device: a new update id above every earlier one for it; an
        older update still pending for the device is superseded (the node drops its
        transfer when the newer offer comes)."""
        parts = ota.parse_bundle(bundle)   # OtaFormatError for a file that is no bundle
        ota.encode_offer(1, bundle, chunk)  # the size and chunk limits, before storing
        now = time.time()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            (last,) = conn.execute("SELECT COALESCE(MAX(update_id), 0) FROM updates WHERE "
                                   "device_id=?", (device_id,)).fetchone()
            uid = last + 1
            conn.execute("UPDATE updates SET state='superseded', updated=? WHERE device_id=? "
                         "AND state='pending'", (now, device_id))
            conn.execute(
                "INSERT INTO updates(device_id, update_id, created, length, sha256, chunk, "
                "bundle, model_sha256, label, state, node_at, node_step, updated) "
                "VALUES (?,?,?,?,?,?,?,?,?,'pending',NULL,NULL,?)",
                (device_id, uid, now, len(bundle), hashlib.sha256(bundle).hexdigest(), chunk,
                 bundle, hashlib.sha256(parts.package).hexdigest(), label, now))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return self.get(device_id, uid)

    def cancel(self, device_id: int) -> Update | None:
        """Cancel the device's update in progress (pending, or active on trial); None when
        there is none. One the node never took is cancelled at once."""
        row = self.conn.execute(
            f"SELECT {_COLS} FROM updates WHERE device_id=? AND state IN ('pending','active')"
            " ORDER BY update_id DESC LIMIT 1", (device_id,)).fetchone()
        if row is None:
            return None
        u = Update(*row)
        state = "cancelled" if u.node_step is None else "cancelling"
        self.conn.execute("UPDATE updates SET state=?, updated=? WHERE device_id=? AND "
                          "update_id=?", (state, time.time(), device_id, u.update_id))
        return self.get(device_id, u.update_id)

    def get(self, device_id: int, update_id: int) -> Update:
        return Update(*self.conn.execute(
            f"SELECT {_COLS} FROM updates WHERE device_id=? AND update_id=?",
            (device_id, update_id)).fetchone())

    def updates(self, device_id: int | None = None) -> list[Update]:
        sql = f"SELECT {_COLS} FROM updates"
        args: tuple = ()
        if device_id is not None:
            sql += " WHERE device_id=?"
            args = (device_id,)
        return [Update(*r) for r in self.conn.execute(sql + " ORDER BY device_id, update_id",
                                                      args)]

    def status(self, device_id: int | None = None) -> list[dict]:
        """Per device: the active update (as the node last said), the one in progress, and
        the last result (`tinysense ota status`)."""
        by_dev: dict[int, list[Update]] = {}
        for u in self.updates(device_id):
            by_dev.setdefault(u.device_id, []).append(u)
        out = []
        for dev, ups in sorted(by_dev.items()):
            active = _active(ups)
            pending = next((u for u in reversed(ups) if u.state in _SENDING), None)
            last = max(ups, key=lambda u: (u.updated, u.update_id))
            out.append({
                "device": dev,
                "active": None if active is None else {
                    "update_id": active.update_id, "label": active.label,
                    "model_sha256": active.model_sha256, "confirmed": active.state == "done"},
                "pending": None if pending is None else pending.to_dict(),
                "last": last.to_dict()})
        return out

    # -- the gateway's side ---------------------------------------------------------------
    def sending(self) -> dict[int, Update]:
        """device -> the update the gateway is sending it (pending or cancelling)."""
        out: dict[int, Update] = {}
        for row in self.conn.execute(f"SELECT {_COLS} FROM updates WHERE state IN "
                                     "('pending','cancelling','active') "
                                     "ORDER BY update_id"):
            u = Update(*row)
            out[u.device_id] = u
        return out

    def bundle(self, device_id: int, update_id: int) -> bytes:
        (data,) = self.conn.execute("SELECT bundle FROM updates WHERE device_id=? AND "
                                    "update_id=?", (device_id, update_id)).fetchone()
        return bytes(data)

    def note(self, u: Update, events: list[tuple[int, str, int]]) -> Update:
        """Apply the node's OTA events about u; returns the update as it now stands."""
        at, step, state = u.node_at, u.node_step, u.state
        for uid, kind, value in events:
            if uid != u.update_id:
                continue
            if kind == "at":
                at = value
                continue
            step = value
            name = ota.STEPS.get(value, "")
            if name in ("received", "verified", "active", "confirmed"):
                at = u.length   # every byte is on the node (its last OTA_AT came earlier)
            if name == "cancelled":
                state = "cancelled"
            elif state == "cancelling":
                continue
            elif name in _TERMINAL:
                state = "failed"
            elif name == "active":
                state = "active"
            elif name == "confirmed":
                state = "done"
            elif name == "bad_hash":
                at = 0
        if (at, step, state) == (u.node_at, u.node_step, u.state):
            return u
        now = time.time()
        self.conn.execute("UPDATE updates SET node_at=?, node_step=?, state=?, updated=? "
                          "WHERE device_id=? AND update_id=?",
                          (at, step, state, now, u.device_id, u.update_id))
        return Update(u.device_id, u.update_id, u.created, u.length, u.sha256, u.chunk,
                      u.model_sha256, u.label, state, at, step, now)


class UpdateSender:
    """What the gateway sends a device after its frames: the offer, then chunks."""

    def __init__(self, queue: UpdateQueue):
        self.queue = queue
        self._sending: dict[int, Update] = {}
        self._bundles: dict[tuple[int, int], bytes] = {}
        self._read_at = 0.0

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._read_at >= REFRESH_S:
            self._read_at = now
            self._sending = self.queue.sending()

    def active(self) -> bool:
        """Whether any device has an update in progress."""
        return bool(self._sending)

    def wants(self, device_id: int) -> bool:
        return device_id in self._sending

    def downlinks(self, device_id: int, plaintexts: list[bytes]) -> list[tuple[int, bytes]]:
        """(ptype, payload) to send the device after these frames of its (their plaintexts:
        the node's OTA events in them move the update first)."""
        u = self._sending.get(device_id)
        if u is None:
            return []
        events = [e for p in plaintexts for e in ota_events(p)]
        if events:
            u = self.queue.note(u, events)
            if u.state in _SENDING or u.state == "active":
                self._sending[device_id] = u
            else:
                self._sending.pop(device_id, None)
                return []
        if u.state == "cancelling":
            return [(ota.PTYPE_OFFER, ota.encode_cancel(u.update_id))]
        if u.state != "pending":
            return []
        if u.node_step is None:   # the node has not taken the offer yet
            data = self._bundle((device_id, u.update_id))
            return [(ota.PTYPE_OFFER, ota.encode_offer(u.update_id, data, u.chunk))]
        name = ota.STEPS.get(u.node_step, "")
        if name not in ("offered", "bad_hash") or u.node_at is None or u.node_at >= u.length:
            return []   # received / verified: the node finishes on its own
        data = self._bundle((device_id, u.update_id))
        start = u.node_at - u.node_at % u.chunk
        out = []
        for off in range(start, min(u.length, start + CHUNKS_PER_FRAME * u.chunk), u.chunk):
            out.append((ota.PTYPE_CHUNK, ota.encode_chunk(u.update_id, off,
                                                         data[off:off + u.chunk])))
        return out

    def _bundle(self, key: tuple[int, int]) -> bytes:
        data = self._bundles.get(key)
        if data is None:
            if len(self._bundles) > 64:
                self._bundles.clear()
            data = self._bundles[key] = self.queue.bundle(*key)
        return data


def device_arg(text: str) -> int:
    """A device id as the CLI takes it (decimal or 0x hex)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise TinysenseError(f"device id {text!r}: a number (decimal or 0x...)") from None
    if not 0 <= value < 2**32:
        raise TinysenseError(f"device id {text}: 0..2^32-1")
    return value
