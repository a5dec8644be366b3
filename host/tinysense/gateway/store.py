"""The gateway's durable store: one SQLite file (WAL) holding devices, frames and counters.

Durability rule: the gateway acknowledges a frame only after the transaction that inserted
it has committed. With `synchronous=FULL` (the default) a commit has been fsync'ed to the
WAL when it returns, so an acknowledged frame survives a gateway kill AND a host power cut;
`synchronous=NORMAL` survives a gateway kill (the WAL is in the OS page cache) but a power
cut may lose the last commits. Commits are batched (many frames per transaction) so the
fsync cost is shared.

Tables:
  devices(device_id, key, key_version, created, rotated)        the registry (registry.py)
  frames(device_id, key_version, counter, received_at, ptype, source, payload, decoded,
         decode_error)  PRIMARY KEY(device_id, key_version, counter)
  batches(received_at, first_rowid, frames)                    one row per insert: time index
  rejections(reason, count)                                     cumulative, all runs
  device_rejections(device_id, reason, count)                   the same, of the frames
                                                                whose header names a
                                                                registered device
  downlink(device_id, key_version, reserved_until)              ack counters reserved ahead
  device_boards(device_id, board, updated)                      the board each device was
                                                                provisioned on (ota push)
  updates(...)                                                  over-the-air updates
                                                                (gateway/updates.py)
  models(device_id, model_id, name, labels, meta_sha256, set_at) what each device runs
  cursors(name, rowid)                     how far a consumer (the MQTT publisher) has read

Migration: every table is created `IF NOT EXISTS` when the gateway opens the file, so a
database written before `models` and `cursors` existed gains them on its next read-write
open; the read-only readers (`uplinks`, `devices`) treat a missing `models` as empty.

`key_version` is part of the frame key because a node may restart its counter when its key
is rotated: (device, counter) is unique only under one key.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tinysense.errors import TinysenseError
from tinysense.paths import STATE_DIR

DEFAULT_DB = STATE_DIR / "gateway.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices(
    device_id INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    key_version INTEGER NOT NULL,
    created REAL NOT NULL,
    rotated REAL
);
CREATE TABLE IF NOT EXISTS frames(
    device_id INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    counter INTEGER NOT NULL,
    received_at REAL NOT NULL,
    ptype INTEGER NOT NULL,
    source TEXT,
    payload BLOB NOT NULL,
    decoded TEXT,
    decode_error TEXT,
    PRIMARY KEY(device_id, key_version, counter)
);
CREATE TABLE IF NOT EXISTS batches(
    received_at REAL NOT NULL,
    first_rowid INTEGER NOT NULL,
    frames INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_received ON batches(received_at);
CREATE TABLE IF NOT EXISTS rejections(
    reason TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS device_rejections(
    device_id INTEGER NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY(device_id, reason)
);
CREATE TABLE IF NOT EXISTS device_boards(
    device_id INTEGER PRIMARY KEY,
    board TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS downlink(
    device_id INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    reserved_until INTEGER NOT NULL,
    PRIMARY KEY(device_id, key_version)
);
CREATE TABLE IF NOT EXISTS models(
    device_id INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    meta_sha256 TEXT NOT NULL,
    set_at REAL NOT NULL,
    PRIMARY KEY(device_id, model_id)
);
CREATE TABLE IF NOT EXISTS cursors(
    name TEXT PRIMARY KEY,
    rowid INTEGER NOT NULL
);
"""

SYNC_MODES = ("FULL", "NORMAL", "EXTRA")

_INSERT = ("INSERT INTO frames(device_id, key_version, counter, received_at, ptype, source,"
           " payload, decoded, decode_error) VALUES (?,?,?,?,?,?,?,?,?)")


def open_db(path: str | os.PathLike | None = None, *, synchronous: str = "FULL",
            wal: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the gateway database; the file is made private (0600).

    Args:
        path: the SQLite file; None means STATE_DIR/gateway.db; ":memory:" for tests.
        synchronous: FULL (ack survives power loss), NORMAL (ack survives a gateway kill).
        wal: WAL journal (default); False keeps SQLite's rollback journal.
    """
    sync = synchronous.upper()
    if sync not in SYNC_MODES:
        raise TinysenseError(f"unknown SQLite synchronous mode {synchronous!r}; "
                             f"expected one of {', '.join(SYNC_MODES)}")
    target = str(DEFAULT_DB if path is None else path)
    if target != ":memory:":
        parent = Path(target).parent
        parent.mkdir(parents=True, exist_ok=True)
        if not Path(target).exists():
            # Create it private before SQLite writes the first key into it.
            fd = os.open(target, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    try:
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False,
                               timeout=10.0)
        conn.execute("PRAGMA busy_timeout=10000")
        if wal and target != ":memory:":
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise TinysenseError(f"{target}: SQLite refused WAL mode (got {mode}); "
                                     "put the database on a local filesystem")
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise TinysenseError(f"cannot open gateway database {target}: {exc}; "
                             "expected an SQLite file written by `tinysense gateway`") from exc
    return conn


@dataclass(frozen=True)
class StoredFrame:
    """One stored uplink frame as `tinysense uplinks` shows it."""

    device_id: int
    key_version: int
    counter: int
    received_at: float
    ptype: int
    source: str | None
    payload: bytes
    decoded: str | None
    decode_error: str | None


class Store:
    """Frames, rejection counts and downlink counter reservations in the gateway database."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    # -- transactions ---------------------------------------------------------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Commit; when this returns the batch is durable and may be acknowledged."""
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    # -- frames ---------------------------------------------------------------------------
    def insert_frames(self, rows: list[tuple]) -> None:
        """Insert rows (device_id, key_version, counter, received_at, ptype, source, payload,
        decoded, decode_error) inside the current transaction, plus their `batches` row.

        Time queries go through `batches` (one row per insert, indexed by time) instead of
        an index on frames.received_at, which cost about a third of the insert rate: the
        rows of one executemany get consecutive rowids (single writer, one transaction).
        """
        if not rows:
            return
        self.conn.executemany(_INSERT, rows)
        last = self.conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        self.conn.execute("INSERT INTO batches(received_at, first_rowid, frames) VALUES(?,?,?)",
                          (max(r[3] for r in rows), last - len(rows) + 1, len(rows)))

    def has_frame(self, device_id: int, key_version: int, counter: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM frames WHERE device_id=? AND key_version=? AND counter=?",
            (device_id, key_version, counter)).fetchone()
        return row is not None

    def recent_counters(self, device_id: int, key_version: int,
                        window: int) -> tuple[int | None, list[int]]:
        """The highest stored counter and every stored counter within `window` below it
        (one backward walk of the primary key, at most `window` rows)."""
        rows = self.conn.execute(
            "SELECT counter FROM frames WHERE device_id=? AND key_version=? "
            "ORDER BY counter DESC LIMIT ?", (device_id, key_version, window)).fetchall()
        if not rows:
            return None, []
        top = rows[0][0]
        return top, [r[0] for r in rows if r[0] > top - window]

    def frames(self, device_id: int | None = None, since: float | None = None,
               limit: int | None = None) -> Iterator[StoredFrame]:
        """Stored frames in arrival order, optionally of one device and after a time."""
        sql = ("SELECT device_id, key_version, counter, received_at, ptype, source, payload,"
               " decoded, decode_error FROM frames")
        where, args = [], []
        if device_id is not None:
            where.append("device_id=?")
            args.append(device_id)
        if since is not None:
            first = self.conn.execute("SELECT MIN(first_rowid) FROM batches WHERE "
                                      "received_at>=?", (since,)).fetchone()[0]
            if first is not None:  # exact even if the clock went backwards: a filter follows
                where.append("rowid>=?")
                args.append(first)
            elif self.conn.execute("SELECT 1 FROM batches LIMIT 1").fetchone() is not None:
                return  # nothing received at or after `since`
            where.append("received_at>=?")
            args.append(since)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid"  # arrival order
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in self.conn.execute(sql, args):
            yield StoredFrame(*row)

    def frames_after(self, rowid: int, limit: int = 256) -> list[tuple[int, StoredFrame]]:
        """Up to `limit` (rowid, frame) stored after `rowid`, in arrival order: how a consumer
        that keeps its own watermark (the MQTT publisher's cursor) reads what is new."""
        rows = self.conn.execute(
            "SELECT rowid, device_id, key_version, counter, received_at, ptype, source, "
            "payload, decoded, decode_error FROM frames WHERE rowid>? ORDER BY rowid LIMIT ?",
            (rowid, int(limit))).fetchall()
        return [(r[0], StoredFrame(*r[1:])) for r in rows]

    def last_rowid(self) -> int:
        """The newest frame's rowid (0 when there is none)."""
        return self.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM frames").fetchone()[0]

    def cursor(self, name: str) -> int | None:
        """A consumer's persisted watermark (a frames rowid), None if it never saved one."""
        row = self.conn.execute("SELECT rowid FROM cursors WHERE name=?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_cursor(self, name: str, rowid: int) -> None:
        """Persist a consumer's watermark (its own short transaction)."""
        self.conn.execute("INSERT INTO cursors(name, rowid) VALUES(?, ?) ON CONFLICT(name) "
                          "DO UPDATE SET rowid=excluded.rowid", (name, rowid))

    def count_frames(self, device_id: int | None = None) -> int:
        if device_id is None:
            return self.conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM frames WHERE device_id=?",
                                 (device_id,)).fetchone()[0]

    # -- rejections -----------------------------------------------------------------------
    def add_rejections(self, counts: dict[str, int]) -> None:
        """Add to the cumulative per-reason rejection counts (inside the transaction)."""
        self.conn.executemany(
            "INSERT INTO rejections(reason, count) VALUES(?, ?) "
            "ON CONFLICT(reason) DO UPDATE SET count = count + excluded.count",
            [(k, v) for k, v in counts.items() if v])

    def add_device_rejections(self, counts: dict[tuple[int, str], int]) -> None:
        """Add to the cumulative per-(device, reason) counts (inside the transaction); only
        registered devices are counted, so forged device ids cannot grow the table."""
        self.conn.executemany(
            "INSERT INTO device_rejections(device_id, reason, count) VALUES(?, ?, ?) "
            "ON CONFLICT(device_id, reason) DO UPDATE SET count = count + excluded.count",
            [(dev, reason, n) for (dev, reason), n in counts.items() if n])

    def rejection_counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT reason, count FROM rejections ORDER BY reason"))

    # -- downlink counters ----------------------------------------------------------------
    def reserve_downlink(self, device_id: int, key_version: int,
                         block: int) -> tuple[int, int] | None:
        """Reserve `block` downlink counters (inside the transaction): returns [start, end),
        or None when this key's 2^32 downlink counters are used up (rotate the key).

        The reservation is committed before any counter in it is used (acks are sent after
        the commit), so after a crash the gateway continues above it: a power cut can skip
        ack counters but never repeat one under the same key.
        """
        row = self.conn.execute(
            "SELECT reserved_until FROM downlink WHERE device_id=? AND key_version=?",
            (device_id, key_version)).fetchone()
        start = row[0] if row else 0
        end = start + block
        if end > 0xFFFFFFFF + 1:
            end = 0xFFFFFFFF + 1
        if start >= end:
            return None
        self.conn.execute(
            "INSERT INTO downlink(device_id, key_version, reserved_until) VALUES(?,?,?) "
            "ON CONFLICT(device_id, key_version) DO UPDATE SET reserved_until=excluded."
            "reserved_until", (device_id, key_version, end))
        return start, end
