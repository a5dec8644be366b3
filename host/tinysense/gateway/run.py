"""`tinysense gateway` and `tinysense uplinks` as library functions (the CLI only parses)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tinysense.errors import TinysenseError
from tinysense.gateway.core import Accepted, Gateway, iso, stored_decoded, to_json
from tinysense.gateway.registry import (
    MAX_DEVICE_ID, ModelLabels, labels_for, model_labels, read_models,
)
from tinysense.gateway.ingest import DEFAULT_BATCH, IngestLoop
from tinysense.gateway.mqtt import MqttTransport
from tinysense.gateway.serial_lines import SerialTransport
from tinysense.gateway.udp import UdpTransport, parse_hostport
from tinysense.gateway.store import DEFAULT_DB, Store, StoredFrame, open_db
from tinysense.uplink.labels import label_record, record_text


def parse_device_id(text: str) -> int:
    """'42', '0x2a' -> 42."""
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_DEVICE_ID:
        raise TinysenseError(f"bad device id {text!r}; expected a uint32 such as 42 or 0x2a")
    return value


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")


def parse_since(text: str, now: float | None = None) -> float:
    """A time as unix seconds: '1764400000', '2026-11-29T08:00:00Z', or '10m'/'2h'/'1d' ago."""
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        base = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
        return base - float(m.group(1)) * scale
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TinysenseError(f"bad time {text!r}; expected ISO 8601 (2026-11-29T08:00:00Z), "
                             "unix seconds, or an age such as 30s, 10m, 2h, 1d") from None
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is local time
    return when.timestamp()


def summarize(a: Accepted, labels: ModelLabels | None = None) -> str:
    """One line for a frame: device, counter, type, summary (records named and labelled)."""
    head = f"{a.device_id:08x} #{a.counter:<8d}"
    if a.duplicate:
        return f"{head} duplicate        already stored, acknowledged again ({a.source})"
    if a.decode_error:
        return f"{head} records          UNDECODABLE, stored raw: {a.decode_error}"
    if a.decoded is None:
        return f"{head} records          stored ({a.source})"
    recs = a.decoded.get("records", [])
    parts = "; ".join(record_text(r, _labels(labels, a.device_id, r)) for r in recs[:3])
    more = f"; +{len(recs) - 3} more" if len(recs) > 3 else ""
    dropped = a.decoded.get("dropped_total")
    tail = f" [node dropped {dropped} total]" if dropped else ""
    return f"{head} records  {len(recs):3d} rec: {parts}{more}{tail}"


def _labels(labels: ModelLabels | None, device_id: int, rec: dict):
    if labels is None:
        return None
    return labels.labels(device_id, rec.get("model") if "model" in rec else None)


@dataclass
class GatewayConfig:
    """What `tinysense gateway` runs: transports, store and ingest settings."""

    db: str | None = None
    udp: str | None = None
    mqtt: str | None = None
    serial: str | None = None
    baud: int = 115200
    serial_acks: bool = False
    serial_console: Callable[[bytes], None] | None = None  # gets the serial port's other lines
    synchronous: str = "FULL"
    max_batch: int = DEFAULT_BATCH
    window: int = 1024
    max_age: int | None = None
    decode: bool = True
    publish: str | None = None      # mqtt://HOST:PORT: republish records (publish.py)
    http: str | None = None          # the fleet page: HOST:PORT (gateway/fleet_http.py)
    http_token: str | None = None
    extra: dict = field(default_factory=dict)


class RunningGateway:
    """A started gateway: its Gateway, ingest loop and transports; `close()` stops it."""

    def __init__(self, config: GatewayConfig, on_frame: Callable[[Accepted], None] | None):
        if not (config.udp or config.mqtt or config.serial or config.http):
            raise TinysenseError("no transport given; expected at least one of --udp HOST:PORT,"
                                 " --mqtt URL, --serial PORT (or --http HOST:PORT)")
        if config.http:  # a bad value stops us before anything opens
            from tinysense.gateway.fleet_http import check_http

            http_at = check_http(config.http, config.http_token)
        self.publisher = None
        if config.publish:   # the URL is checked before anything starts
            from tinysense.gateway.publish import Publisher

            self.publisher = Publisher(DEFAULT_DB if config.db is None else config.db,
                                       config.publish)
        self.conn = open_db(config.db, synchronous=config.synchronous)
        self.store = Store(self.conn)
        self.labels = ModelLabels(self.conn)
        self.gateway = Gateway(self.store, window=config.window, max_age=config.max_age,
                               on_frame=on_frame, decode=config.decode,
                               on_commit=self.publisher.notify if self.publisher else None)
        self.loop = IngestLoop(self.gateway, max_batch=config.max_batch)
        self.transports: list = []
        self.serial: SerialTransport | None = None
        self.addresses: dict[str, str] = {}
        self.http = None
        try:
            if config.udp:
                udp = UdpTransport(self.loop, *parse_hostport(config.udp))
                self.transports.append(udp)
                self.addresses["udp"] = f"{udp.address[0]}:{udp.address[1]}"
            if config.mqtt:
                mq = MqttTransport(self.loop, config.mqtt)
                self.transports.append(mq)
                self.addresses["mqtt"] = f"{mq.settings['host']}:{mq.settings['port']}"
            if config.serial:
                ser = SerialTransport(self.loop, config.serial, config.baud, config.serial_acks,
                                      on_line=config.serial_console)
                self.transports.append(ser)
                self.serial = ser
                self.addresses["serial"] = config.serial
            if self.publisher is not None:
                self.publisher.start()
                self.addresses["publish"] = self.publisher.url
            if config.http:
                self.http = _fleet_server(config, *http_at)
                self.addresses["http"] = f"http://{self.http.address}/"
            self.loop.start()
            for t in self.transports:
                t.start()
            if self.http:
                self.http.start()
        except BaseException:
            self.close()
            raise

    def close(self) -> dict[str, int]:
        """Stop receiving, commit and acknowledge what was received, close everything."""
        if self.http is not None:
            self.http.close()
            with self.http.view.lock:   # a request still being answered finishes first
                self.http.view.conn.close()
        for t in self.transports:
            try:
                t.stop_receiving()
            except Exception:  # noqa: BLE001 - stopping must go on
                pass
        drained = self.loop.stop()
        for t in self.transports:
            try:
                t.close()
            except Exception:  # noqa: BLE001
                pass
        if self.publisher is not None:   # after the last commit: it publishes what is left
            try:
                self.publisher.close()
            except Exception:  # noqa: BLE001
                pass
        counts = self.gateway.rejection_counts()
        if drained:  # else the ingest thread still uses it; the process exit closes it
            self.conn.close()
        return counts


def _fleet_server(config: GatewayConfig, host: str, port: int):
    """The fleet page's server over its own read-only connection to the database."""
    from tinysense.gateway.fleet import FleetView
    from tinysense.gateway.fleet_http import FleetServer

    if str(config.db) == ":memory:":
        raise TinysenseError("--http needs a database file (not :memory:)")
    conn = open_db_readonly(config.db if config.db is not None else DEFAULT_DB)
    try:
        return FleetServer(FleetView(conn), host, port, config.http_token)
    except BaseException:
        conn.close()
        raise


def run_gateway(config: GatewayConfig, out: TextIO = sys.stdout,
                stop: threading.Event | None = None, lines: bool = True) -> dict[str, int]:
    """Run until `stop` is set or Ctrl-C; print a line per frame (unless `lines` is False)
    and the rejection counts at the end; return the counts."""
    holder: list[RunningGateway] = []

    def on_frame(a: Accepted) -> None:   # the ingest thread: the gateway's own connection
        print(summarize(a, holder[0].labels if holder else None), file=out, flush=True)

    gw = RunningGateway(config, on_frame if lines else None)
    holder.append(gw)
    for kind, addr in gw.addresses.items():
        verb = "publishing to" if kind == "publish" else "listening on"
        print(f"gateway: {verb} {kind if kind != 'publish' else 'mqtt'} {addr}", file=out,
              flush=True)
    stop = stop or threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_signals_while_closing()
        counts = gw.close()
        stats = gw.gateway.stats
        dropped = (f", nodes reported {stats['node_dropped']} frames dropped from full queues"
                   if stats["node_dropped"] else "")
        print(f"gateway: stopped; stored {stats['accepted']} frames, re-acknowledged "
              f"{stats['duplicate']} duplicates, sent {stats['acks']} acks{dropped}", file=out)
        if counts:
            print("gateway: rejections: " + ", ".join(f"{k}={v}" for k, v in counts.items()),
                  file=out, flush=True)
        else:
            print("gateway: rejections: none", file=out, flush=True)
    return counts


def _ignore_signals_while_closing() -> None:
    """A second Ctrl-C (or a SIGTERM after it) must not cut the final commit and acks
    short; closing is bounded (joins time out), so the process still ends."""
    import signal

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def frame_dict(row: StoredFrame, labels: dict | None = None) -> dict:
    """A stored frame as JSON-able data (decoding the payload now if it was stored raw), its
    records named and labelled (tinysense.uplink.labels) with `labels` (model_labels)."""
    decoded, error = stored_decoded(row.ptype, row.payload, row.decoded, row.decode_error)
    if decoded is not None and isinstance(decoded.get("records"), list):
        index = labels or {}
        decoded["records"] = [
            label_record(r, labels_for(index, row.device_id, r.get("model")
                                       if r.get("type") in ("inference", "anomaly") else None))
            for r in decoded["records"]]
    out = {"device": f"{row.device_id:08x}", "device_id": row.device_id,
           "key_version": row.key_version, "counter": row.counter,
           "received_at": iso(row.received_at), "ptype": row.ptype, "source": row.source}
    if decoded is not None:
        out.update(decoded)
    if error is not None:
        out["decode_error"] = error
        out["payload_hex"] = row.payload.hex()
    return out


def open_db_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    """Open the gateway database for reading only (`uplinks`, `devices`): never a write to
    it, no schema created in a file that is not ours, no journal mode changed."""
    from urllib.parse import quote

    try:
        conn = sqlite3.connect(f"file:{quote(str(Path(path).resolve()))}?mode=ro", uri=True,
                               timeout=10.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise TinysenseError(f"cannot read gateway database {path}: {exc}; expected an "
                             "SQLite file written by `tinysense gateway`") from None
    return conn


def list_uplinks(db: str | None = None, device: int | None = None,
                 since: float | None = None) -> Iterator[dict]:
    """The stored frames, oldest first, as dicts (see frame_dict)."""
    path = Path(db) if db is not None else DEFAULT_DB
    if str(path) != ":memory:" and not path.exists():
        raise TinysenseError(f"no gateway database at {path}; start `tinysense gateway` first "
                             "or point --db (env TINYSENSE_GATEWAY_DB) at one")
    conn = open_db(path) if str(path) == ":memory:" else open_db_readonly(path)
    try:
        labels = model_labels(conn)
        for row in Store(conn).frames(device_id=device, since=since):
            yield frame_dict(row, labels)
    finally:
        conn.close()


CSV_FIELDS = ["device", "counter", "key_version", "received_at", "source", "boot",
              "dropped_total", "record", "type", "id", "name", "t_ms", "values", "label", "unit"]


def write_uplinks(frames: Iterator[dict], fmt: str, out: TextIO = sys.stdout) -> int:
    """Write frames as JSON Lines (one object per frame) or CSV (one row per record)."""
    n = 0
    if fmt == "json":
        for f in frames:
            out.write(to_json(f) + "\n")
            n += 1
        return n
    if fmt != "csv":
        raise TinysenseError(f"unknown format {fmt!r}; expected json or csv")
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for f in frames:
        n += 1
        base = {k: f.get(k) for k in ("device", "counter", "key_version", "received_at",
                                      "source", "boot", "dropped_total")}
        records = f.get("records") or [None]
        for i, rec in enumerate(records):
            row = dict(base)
            if rec is not None:
                ident = next((rec[k] for k in ("sensor", "model", "code") if k in rec), "")
                if rec.get("type") == "reading":
                    values = " ".join(str(v) for v in rec.get("values", []))
                elif rec.get("type") == "inference":
                    values = f"{rec.get('class')} {rec.get('confidence')}"
                elif rec.get("type") == "anomaly":
                    values = f"{rec.get('score')} {int(bool(rec.get('anomalous')))}"
                else:
                    values = str(rec.get("value", ""))
                by_class = rec.get("by_class")
                row.update(record=i, type=rec.get("type"), id=ident, name=rec.get("name"),
                           t_ms=rec.get("t_ms"), values=values, unit=rec.get("unit"),
                           label=rec.get("label") if by_class is None else
                           " ".join(f"{k}={v}" for k, v in by_class.items()))
            elif "decode_error" in f:
                row.update(type="undecodable", values=f["payload_hex"])
            writer.writerow(row)
    return n


def list_devices(db: str | None = None) -> list[dict]:
    """Registered devices with their key version and traffic (never their keys)."""
    path = Path(db) if db is not None else DEFAULT_DB
    if not path.exists():
        raise TinysenseError(f"no gateway database at {path}; provision a device first "
                             "(`tinysense provision`) or point --db at one")
    conn = open_db_readonly(path)
    try:
        rows = conn.execute(
            "SELECT d.device_id, d.key_version, d.created, d.rotated, "
            "(SELECT COUNT(*) FROM frames f WHERE f.device_id = d.device_id), "
            "(SELECT MAX(received_at) FROM frames f WHERE f.device_id = d.device_id) "
            "FROM devices d ORDER BY d.device_id").fetchall()
        models: dict[int, list[dict]] = {}
        for m in read_models(conn):
            models.setdefault(m.device_id, []).append(
                {"model_id": m.model_id, "name": m.name, "labels": list(m.labels),
                 "meta_sha256": m.meta_sha256, "set_at": iso(m.set_at)})
    finally:
        conn.close()
    return [{"device": f"{r[0]:08x}", "device_id": r[0], "key_version": r[1],
             "created": iso(r[2]), "rotated": iso(r[3]) if r[3] else None, "frames": r[4],
             "last_seen": iso(r[5]) if r[5] else None, "models": models.get(r[0], [])}
            for r in rows]


def set_device_model(db: str | None, device_id: int, meta_path: str | os.PathLike,
                     model_id: int = 1, name: str | None = None):
    """Record in the registry that `device_id` runs the model of `meta_path` (meta.json) as
    `model_id`: its class labels then name the device's results everywhere."""
    path = Path(db) if db is not None else DEFAULT_DB
    if not path.exists():
        raise TinysenseError(f"no gateway database at {path}; provision the device first "
                             "(`tinysense provision`) or point --db at one")
    try:
        raw = Path(meta_path).read_bytes()
        meta = json.loads(raw)
        labels = meta.get("labels") or []
        if not isinstance(labels, list):
            raise ValueError("labels is not a list")
    except (OSError, ValueError, AttributeError) as exc:
        raise TinysenseError(f"{meta_path}: not a model meta.json ({exc})") from None
    from tinysense.gateway.registry import Registry

    conn = open_db(path)
    try:
        return Registry(conn).set_model(device_id, model_id, name or meta.get("name") or
                                        Path(meta_path).parent.name, labels, raw)
    finally:
        conn.close()
