"""The device registry: each device's AES-128 key and key version, in the gateway database.

Keys never leave this module in printable form: `DeviceKey.__repr__` hides the key, nothing
here logs or prints it, and the database file is created 0600 (store.open_db).

Rotation (decision): rotating a device's key replaces it and bumps `key_version`; the old
key is forgotten at once (a clean cut, nothing to leak later). Frames the node sealed with
the old key and had not yet had acknowledged are rejected as `bad_tag` afterwards, so rotate
when the node's queue is drained. The gateway keeps its replay window and its downlink
(ack) counter per (device, key_version), so a node may restart its frame counter at 0 under
the new key; it may also simply continue it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, field

from tinysense.errors import TinysenseError

KEY_BYTES = 16
MAX_DEVICE_ID = 0xFFFFFFFF


@dataclass(frozen=True)
class DeviceKey:
    """A device's current key. `repr` never shows the key."""

    device_id: int
    key: bytes = field(repr=False)
    key_version: int


@dataclass(frozen=True)
class DeviceInfo:
    """What the registry may show about a device (no key)."""

    device_id: int
    key_version: int
    created: float
    rotated: float | None


def check_device_id(device_id: int) -> int:
    if not isinstance(device_id, int) or not 0 <= device_id <= MAX_DEVICE_ID:
        raise TinysenseError(f"device id {device_id!r} is out of range; expected an integer "
                             f"0..{MAX_DEVICE_ID} (uint32, e.g. 42 or 0x2a)")
    return device_id


def new_key() -> bytes:
    """A fresh random AES-128 key from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


@dataclass(frozen=True)
class DeviceModel:
    """The model a device runs under one model id (the app's `model_id`, default 1): its
    name, class labels and the SHA-256 of its meta.json, recorded at deploy time."""

    device_id: int
    model_id: int
    name: str
    labels: tuple[str, ...]
    meta_sha256: str
    set_at: float


def meta_sha256(meta_bytes: bytes) -> str:
    return hashlib.sha256(meta_bytes).hexdigest()


def read_models(conn: sqlite3.Connection) -> list[DeviceModel]:
    """Every recorded (device, model id) -> model; [] in a database older than the table."""
    try:
        rows = conn.execute("SELECT device_id, model_id, name, labels, meta_sha256, set_at "
                            "FROM models ORDER BY device_id, model_id").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [DeviceModel(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows]


def model_labels(conn: sqlite3.Connection) -> dict[tuple[int, int], tuple[str, ...]]:
    """{(device, model id): class labels} for labelling records (tinysense.uplink.labels)."""
    return {(m.device_id, m.model_id): m.labels for m in read_models(conn)}


def labels_for(index: dict[tuple[int, int], tuple[str, ...]], device_id: int,
               model_id: int | None = None) -> tuple[str, ...] | None:
    """The labels of `device_id`'s model `model_id`; without a model id (a per-class reading,
    a class-valued event) the device's only model, else its model 1 (the app's default)."""
    if model_id is not None:
        return index.get((device_id, model_id))
    mine = [v for (d, _), v in index.items() if d == device_id]
    return mine[0] if len(mine) == 1 else index.get((device_id, 1))


class ModelLabels:
    """`model_labels(conn)` kept fresh: re-read at most once per `refresh_s`, and only when
    some connection committed since (`PRAGMA data_version`; deploys record models from other
    processes while a gateway or monitor runs)."""

    def __init__(self, conn: sqlite3.Connection, refresh_s: float = 1.0, clock=time.monotonic):
        self.conn = conn
        self.refresh_s = refresh_s
        self.clock = clock
        self.index: dict[tuple[int, int], tuple[str, ...]] = {}
        self.names: dict[int, str] = {}   # device -> its (lowest model id's) model name
        self._at: float | None = None
        self._version = None

    def get(self) -> dict[tuple[int, int], tuple[str, ...]]:
        now = self.clock()
        if self._at is not None and 0 <= now - self._at < self.refresh_s:
            return self.index
        self._at = now
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._version = version
            models = read_models(self.conn)
            self.index = {(m.device_id, m.model_id): m.labels for m in models}
            self.names = {}
            for m in models:
                self.names.setdefault(m.device_id, m.name)
        return self.index

    def labels(self, device_id: int, model_id: int | None = None) -> tuple[str, ...] | None:
        return labels_for(self.get(), device_id, model_id)


class Registry:
    """Device keys in the `devices` table of the gateway database (see store.open_db)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def lookup(self, device_id: int) -> DeviceKey | None:
        row = self.conn.execute("SELECT key, key_version FROM devices WHERE device_id=?",
                                (device_id,)).fetchone()
        if row is None:
            return None
        return DeviceKey(device_id, bytes(row[0]), row[1])

    def devices(self) -> list[DeviceInfo]:
        rows = self.conn.execute(
            "SELECT device_id, key_version, created, rotated FROM devices ORDER BY device_id")
        return [DeviceInfo(*r) for r in rows]

    def set_board(self, device_id: int, board: str) -> None:
        """Record the board a device runs on (provision does; `ota push` converts for it)."""
        self.conn.execute("INSERT INTO device_boards(device_id, board, updated) VALUES(?,?,?) "
                          "ON CONFLICT(device_id) DO UPDATE SET board=excluded.board, "
                          "updated=excluded.updated", (device_id, board, time.time()))

    def board(self, device_id: int) -> str | None:
        """The board recorded for a device, or None (provisioned before boards were kept)."""
        row = self.conn.execute("SELECT board FROM device_boards WHERE device_id=?",
                                (device_id,)).fetchone()
        return None if row is None else row[0]

    def set_key(self, device_id: int, key: bytes, *, rotate: bool = False) -> DeviceKey:
        """Register a device's key, or replace it (`rotate=True`) bumping its key version.

        Runs inside the caller's transaction if one is open (provisioning commits only
        after the key is safely on the node), otherwise commits at once.
        """
        check_device_id(device_id)
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
            raise TinysenseError(f"a device key must be {KEY_BYTES} bytes")
        own_txn = not self.conn.in_transaction
        if own_txn:
            self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute("SELECT key_version FROM devices WHERE device_id=?",
                                    (device_id,)).fetchone()
            now = time.time()
            if row is None:
                # a device removed and provisioned again must not reuse a key version that
                # frames (or downlink counters) were stored under: its node restarts at
                # counter 0, and (device, key version, counter) already stored would make
                # its new frames duplicates (acked, never stored)
                used = self.conn.execute(
                    "SELECT MAX(v) FROM (SELECT MAX(key_version) AS v FROM frames WHERE "
                    "device_id=?1 UNION ALL SELECT MAX(key_version) FROM downlink WHERE "
                    "device_id=?1)", (device_id,)).fetchone()[0]
                version = (used or 0) + 1
                self.conn.execute(
                    "INSERT INTO devices(device_id, key, key_version, created, rotated) "
                    "VALUES(?,?,?,?,NULL)", (device_id, bytes(key), version, now))
            elif not rotate:
                raise TinysenseError(
                    f"device {device_id} (0x{device_id:08x}) is already provisioned (key "
                    f"version {row[0]}); use --rotate to give it a new key")
            else:
                version = row[0] + 1
                self.conn.execute(
                    "UPDATE devices SET key=?, key_version=?, rotated=? WHERE device_id=?",
                    (bytes(key), version, now, device_id))
            if own_txn:
                self.conn.execute("COMMIT")
        except BaseException:
            if own_txn and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        return DeviceKey(device_id, bytes(key), version)

    def remove(self, device_id: int) -> bool:
        cur = self.conn.execute("DELETE FROM devices WHERE device_id=?", (device_id,))
        self.conn.execute("DELETE FROM models WHERE device_id=?", (device_id,))
        return cur.rowcount > 0

    def set_model(self, device_id: int, model_id: int, name: str, labels, meta_bytes: bytes
                  ) -> DeviceModel:
        """Record which model (name, class labels, meta hash) `device_id` runs as `model_id`.

        The gateway's readers then show its results by class name (tinysense.uplink.labels).
        The device must be provisioned: a model for an unknown id would be shown for any
        device later given that id.
        """
        check_device_id(device_id)
        if not isinstance(model_id, int) or not 0 <= model_id <= 255:
            raise TinysenseError(f"model id {model_id!r} is out of range; expected 0..255 "
                                 "(the app's model_id, default 1)")
        labels = tuple(str(x) for x in labels or ())
        if self.lookup(device_id) is None:
            raise TinysenseError(f"device {device_id} (0x{device_id:08x}) is not in the registry;"
                                 " provision it first (tinysense provision --device-id ID)")
        model = DeviceModel(device_id, model_id, str(name), labels, meta_sha256(meta_bytes),
                            time.time())
        self.conn.execute(
            "INSERT INTO models(device_id, model_id, name, labels, meta_sha256, set_at) "
            "VALUES(?,?,?,?,?,?) ON CONFLICT(device_id, model_id) DO UPDATE SET "
            "name=excluded.name, labels=excluded.labels, meta_sha256=excluded.meta_sha256, "
            "set_at=excluded.set_at",
            (device_id, model_id, model.name, json.dumps(list(labels)), model.meta_sha256,
             model.set_at))
        return model

    def models(self) -> list[DeviceModel]:
        return read_models(self.conn)


class KeyCache:
    """The gateway's in-memory view of the registry, re-read when it may be stale.

    Positive lookups are cached; a miss or a failed tag re-reads the database at most once
    per `refresh_s` per device, so a device provisioned or rotated while the gateway runs is
    picked up, and a flood of frames for unknown devices costs one query per second each.
    `poll()` (the gateway calls it per batch) asks SQLite at most once per `refresh_s`
    whether another connection committed to the database (`PRAGMA data_version`: a
    `provision --rotate` or a removal from another process); if so the whole cache
    is dropped and `generation` goes up, so a rotated key or a removed device takes effect
    within `refresh_s`, old-key frames included.
    """

    def __init__(self, registry: Registry, refresh_s: float = 1.0, clock=time.monotonic):
        self.registry = registry
        self.refresh_s = refresh_s
        self.clock = clock
        self._keys: dict[int, DeviceKey | None] = {}
        self._checked: dict[int, float] = {}
        self.generation = 0
        self._polled: float | None = None
        self._data_version: int | None = None

    def poll(self) -> int:
        """The cache's generation, after dropping it if the database changed (at most one
        query per `refresh_s`)."""
        now = self.clock()
        if self._polled is not None and 0 <= now - self._polled < self.refresh_s:
            return self.generation
        self._polled = now
        version = self.registry.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            if self._data_version is not None:
                self._keys.clear()
                self._checked.clear()
                self.generation += 1
            self._data_version = version
        return self.generation

    def get(self, device_id: int) -> DeviceKey | None:
        if device_id in self._keys:
            found = self._keys[device_id]
            if found is not None:
                return found
        return self.refresh(device_id)

    def refresh(self, device_id: int) -> DeviceKey | None:
        """Re-read one device's key unless that was done less than `refresh_s` ago."""
        now = self.clock()
        last = self._checked.get(device_id)
        if last is not None and now - last < self.refresh_s and device_id in self._keys:
            return self._keys[device_id]
        if len(self._checked) > 100_000:  # bound memory under a flood of random ids
            self._checked.clear()
            self._keys = {k: v for k, v in self._keys.items() if v is not None}
        found = self.registry.lookup(device_id)
        self._keys[device_id] = found
        self._checked[device_id] = now
        return found
