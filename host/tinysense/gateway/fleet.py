"""The fleet page: what the gateway's database knows of each device, read incrementally.

`FleetView` reads the database through its own read-only connection (never a write) and
keeps, per device, the aggregates the page shows (last seen, heap free, queue depth,
crashes, dropped frames) and a short history of readings and events for the plots. Each
`refresh()` reads only the frames stored since the last one (`rowid` is arrival order,
see store.py), at most `MAX_ROWS_PER_REFRESH`, so a request stays bounded on a large
database (`catching_up` says when older frames are still being read).

The HTTP side is in fleet_http.py; the page itself in fleet_page.html; the JSON it reads
is documented in docs/gateway.md ("The fleet page").
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from tinysense.formats.app import RECORD_IDS
from tinysense.gateway.core import stored_decoded
from tinysense.gateway.registry import ModelLabels, labels_for
from tinysense.gateway.updates import active_models
from tinysense.uplink.labels import label_record

EV_MEM_FREE = RECORD_IDS["EV_MEM_FREE"]
EV_QUEUED = RECORD_IDS["EV_QUEUED"]
EV_CRASH = RECORD_IDS["EV_CRASH"]

HISTORY_READINGS = 120   # readings kept per device for its plot
HISTORY_EVENTS = 60      # events kept per device
MAX_ROWS_PER_REFRESH = 20_000
MIN_REFRESH_S = 0.25     # requests closer together than this share one refresh

_FRAMES = ("SELECT rowid, device_id, key_version, counter, received_at, ptype, payload, "
           "decoded, decode_error FROM frames WHERE rowid>? ORDER BY rowid LIMIT ?")


@dataclass
class DeviceState:
    """What the stored frames of one device say (cumulative over the database)."""

    device_id: int
    frames: int = 0
    last_seen: float | None = None
    last_counter: int | None = None
    key_version_seen: int | None = None
    boot: int | None = None
    heap_free: int | None = None
    queued: int | None = None
    crashes: int = 0
    dropped_total: int | None = None
    undecodable: int = 0
    readings: deque = field(default_factory=lambda: deque(maxlen=HISTORY_READINGS))
    events: deque = field(default_factory=lambda: deque(maxlen=HISTORY_EVENTS))

    def add(self, key_version: int, counter: int, received_at: float,
            decoded: dict | None) -> None:
        """One stored frame. Records are kept as they were stored (the history is labelled
        when asked for, see `history`: labelling every record read costs 3x the reading)."""
        self.frames += 1
        self.last_seen = received_at if self.last_seen is None else max(self.last_seen,
                                                                        received_at)
        self.last_counter, self.key_version_seen = counter, key_version
        if decoded is None:
            self.undecodable += 1
            return
        self.boot = decoded.get("boot", self.boot)
        if decoded.get("dropped_total") is not None:
            self.dropped_total = decoded["dropped_total"]
        records = decoded.get("records") or []
        newest = max((r.get("t_ms", 0) for r in records), default=0)
        for rec in records:
            # a record's time: the frame's arrival less how much older than the newest it is
            t = received_at - (newest - rec.get("t_ms", newest)) / 1000.0
            kind = rec.get("type")
            if kind == "reading":
                self.readings.append((t, rec))
            elif kind == "event":
                code = rec.get("code")
                if code == EV_MEM_FREE:
                    self.heap_free = rec.get("value")
                elif code == EV_QUEUED:
                    self.queued = rec.get("value")
                elif code == EV_CRASH:
                    self.crashes += 1
                self.events.append((t, rec))
            elif kind in ("inference", "anomaly"):
                self.events.append((t, rec))

    def history(self, labels: dict) -> dict:
        """The recent readings and events, named and labelled (`labels`: the registry's
        {(device, model id): class labels}, tinysense.uplink.labels)."""
        def named(rec: dict) -> dict:
            return label_record(rec, labels_for(labels, self.device_id, rec.get("model")))

        readings = [{"t": round(t, 3), "sensor": rec.get("sensor"), "name": named(rec)["name"],
                     "values": rec.get("values", [])} for t, rec in self.readings]
        events = []
        for t, rec in self.events:
            lab = named(rec)
            value = rec.get("value") if rec.get("type") == "event" else \
                rec.get("class", rec.get("score"))
            events.append({"t": round(t, 3), "code": rec.get("code"), "name": lab["name"],
                           "value": value, "state": lab.get("state", value)})
        return {"readings": readings, "events": events}


class FleetView:
    """Per-device aggregates of a gateway database, through a read-only connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.lock = threading.Lock()
        self.devices: dict[int, DeviceState] = {}
        self.labels = ModelLabels(conn)
        self.last_rowid = 0
        self.catching_up = True
        self._refreshed = 0.0

    def refresh(self, force: bool = False) -> None:
        """Read the frames stored since the last refresh (bounded per call)."""
        with self.lock:
            now = time.monotonic()
            if not force and now - self._refreshed < MIN_REFRESH_S:
                return
            self._refreshed = now
            try:
                rows = self.conn.execute(_FRAMES, (self.last_rowid, MAX_ROWS_PER_REFRESH)
                                         ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):   # a database no gateway has started on yet
                    self.catching_up = False
                    return
                raise
            for rowid, dev, kv, counter, received_at, ptype, payload, text, error in rows:
                decoded, _ = stored_decoded(ptype, payload, text, error)
                state = self.devices.get(dev)
                if state is None:
                    state = self.devices[dev] = DeviceState(dev)
                state.add(kv, counter, received_at, decoded)
                self.last_rowid = rowid
            self.catching_up = len(rows) == MAX_ROWS_PER_REFRESH

    def _registry(self) -> dict[int, tuple]:
        try:
            rows = self.conn.execute(
                "SELECT d.device_id, d.key_version, d.created, d.rotated, b.board FROM devices d"
                " LEFT JOIN device_boards b ON b.device_id = d.device_id").fetchall()
        except sqlite3.OperationalError:
            return {}
        return {r[0]: r[1:] for r in rows}

    def _rejections(self) -> dict[str, int]:
        try:
            return dict(self.conn.execute("SELECT reason, count FROM rejections "
                                          "ORDER BY reason"))
        except sqlite3.OperationalError:
            return {}

    def _device_rejections(self) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        try:
            rows = self.conn.execute("SELECT device_id, reason, count FROM device_rejections "
                                     "ORDER BY device_id, reason").fetchall()
        except sqlite3.OperationalError:   # a database from before the table existed
            return out
        for dev, reason, count in rows:
            out.setdefault(dev, {})[reason] = count
        return out

    def fleet(self) -> dict:
        """The table of the page: every device, registered or with stored frames."""
        self.refresh()
        with self.lock:
            registry = self._registry()
            models = active_models(self.conn)
            rejected = self._device_rejections()
            out = []
            for dev in sorted(set(registry) | set(self.devices)):
                state = self.devices.get(dev) or DeviceState(dev)
                reg = registry.get(dev)
                model = models.get(dev)
                out.append({
                    "device": f"{dev:08x}", "device_id": dev, "registered": reg is not None,
                    "key_version": reg[0] if reg else state.key_version_seen,
                    "board": reg[3] if reg else None,
                    "last_seen": state.last_seen, "frames": state.frames,
                    "last_counter": state.last_counter, "boot": state.boot,
                    "model_sha256": model["model_sha256"] if model else "deployed",
                    "model_label": model["label"] if model else None,
                    "heap_free": state.heap_free, "queued": state.queued,
                    "crashes": state.crashes, "dropped_total": state.dropped_total,
                    "undecodable": state.undecodable,
                    "rejections": rejected.get(dev, {})})
            return {"now": time.time(), "catching_up": self.catching_up, "devices": out,
                    "rejections": {"global": self._rejections()}}

    def device(self, device_id: int) -> dict | None:
        """One device's recent readings and events (the plots), or None if unknown."""
        self.refresh()
        with self.lock:
            state = self.devices.get(device_id)
            if state is None:
                if device_id not in self._registry():
                    return None
                state = DeviceState(device_id)
            return {"device": f"{device_id:08x}", "device_id": device_id,
                    **state.history(self.labels.get())}
