"""`tinysense ota bundle|push|status|cancel`: over-the-air model updates (docs/formats/ota.md)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from tinysense.errors import TinysenseError


def _db(p) -> None:
    p.add_argument("--db", default=argparse.SUPPRESS,
                   help="gateway SQLite file (default STATE_DIR/gateway.db; env "
                        "TINYSENSE_GATEWAY_DB)")


def register(sub) -> None:
    from tinysense.cli import env_default
    from tinysense.gateway.updates import DEFAULT_CHUNK

    p = sub.add_parser("ota", help="over-the-air model updates: bundle, push, status, cancel",
                       description="Update nodes in the field through the gateway: a bundle "
                                   "(model, meta, app config, self-test vectors) goes to the "
                                   "node in sealed downlink chunks; the node verifies it, "
                                   "runs its self-test, switches at its next boot and rolls "
                                   "back a model the app cannot run (docs/app.md).")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1],
                   db=env_default("TINYSENSE_GATEWAY_DB"))
    osub = p.add_subparsers(dest="action", metavar="{bundle,push,status,cancel}")

    def model_args(q, board_help: str, board_default) -> None:
        q.add_argument("model", help="a .tflite model (converted for the board, self-test "
                                     "vectors from the reference interpreter) or a .tsu bundle")
        q.add_argument("--board", default=board_default, help=board_help)
        q.add_argument("--meta", help="the model's meta.json (labels, preprocessing)")
        q.add_argument("--config", help="an app.json for the node with this model")
        q.add_argument("--vectors", type=int, default=8, help="self-test vectors (2..64)")

    q = osub.add_parser("bundle", help="build an update bundle (.tsu) from a .tflite")
    model_args(q, "the nodes' board (env TINYSENSE_BOARD; default ESP32_GENERIC)",
               env_default("TINYSENSE_BOARD", "ESP32_GENERIC"))
    q.add_argument("-o", "--output", required=True, help="the .tsu file to write")
    q.set_defaults(func=_bundle)

    q = osub.add_parser("push", help="queue an update for devices; the gateway sends it")
    model_args(q, "convert for this board (default: each device's board as provisioned)",
               None)
    q.add_argument("--device", action="append", default=[], metavar="ID",
                   help="a device id (42 or 0x2a); repeat for several")
    q.add_argument("--all", action="store_true", help="every device in the registry")
    q.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help=f"bytes per chunk (default {DEFAULT_CHUNK}: fits the app's default "
                        "max_payload of 256)")
    _db(q)
    q.set_defaults(func=_push)

    q = osub.add_parser("status", help="each device's active model, update in progress, "
                                       "last result")
    q.add_argument("--device", metavar="ID", help="only this device")
    q.add_argument("--json", action="store_true", help="JSON on stdout")
    _db(q)
    q.set_defaults(func=_status)

    q = osub.add_parser("cancel", help="cancel a device's update in progress")
    q.add_argument("--device", required=True, metavar="ID")
    _db(q)
    q.set_defaults(func=_cancel)


def _read(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TinysenseError(f"cannot read the {what} {path}: {exc.strerror}") from None


def _make(args, board: str | None = None) -> bytes:
    from tinysense.formats.ota import OtaFormatError, parse_bundle
    from tinysense.ota import make_bundle

    path = Path(args.model)
    if path.suffix == ".tsu":
        data = _read(args.model, "bundle")
        try:
            parse_bundle(data)
        except OtaFormatError as exc:
            raise TinysenseError(f"{path}: {exc}") from None
        return data
    if not path.is_file():
        raise TinysenseError(f"no model at {path}")
    return make_bundle(path, board or args.board, meta=_read(args.meta, "meta"),
                       config=_read(args.config, "app config"), vectors=args.vectors)


def _bundle(args) -> int:
    data = _make(args)
    out = Path(args.output)
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise TinysenseError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {out} ({len(data):,} bytes, {args.vectors} self-test vectors)")
    return 0


def _open(db: str | None):
    from tinysense.gateway.store import DEFAULT_DB, open_db
    from tinysense.gateway.updates import UpdateQueue

    path = Path(db) if db else DEFAULT_DB
    if not path.exists():
        raise TinysenseError(f"no gateway database at {path}; point --db at the one "
                             "`tinysense gateway` uses")
    conn = open_db(path)
    return conn, UpdateQueue(conn)


def _push(args) -> int:
    from tinysense.gateway import Registry
    from tinysense.gateway.updates import device_arg

    if bool(args.device) == bool(args.all):
        raise TinysenseError("give --device ID (repeatable) or --all")
    devices = [device_arg(d) for d in args.device]
    conn, queue = _open(args.db)
    try:
        registry = Registry(conn)
        known = {d.device_id for d in registry.devices()}
        if args.all:
            devices = sorted(known)
        missing = [d for d in devices if d not in known]
        if missing:
            raise TinysenseError(f"device {missing[0]} is not in the registry (`tinysense "
                                 "devices` lists them)")
        boards = {}
        for dev in devices:
            boards[dev] = args.board or registry.board(dev)
            if boards[dev] is None:
                raise TinysenseError(f"device {dev} was provisioned before boards were "
                                     "recorded: give --board")
        bundles = {b: _make(args, b) for b in sorted(set(boards.values()))}
        label = Path(args.model).name
        for dev in devices:
            data = bundles[boards[dev]]
            u = queue.push(dev, data, chunk=args.chunk, label=label)
            print(f"device {dev}: update {u.update_id} queued ({u.length:,} bytes, model "
                  f"{u.model_sha256[:12]} for {boards[dev]}); it goes out when the node next "
                  "sends")
    except ValueError as exc:
        raise TinysenseError(str(exc)) from None
    finally:
        conn.close()
    return 0


def _status(args) -> int:
    from tinysense.gateway.updates import device_arg

    dev = device_arg(args.device) if args.device else None
    conn, queue = _open(args.db)
    try:
        rows = queue.status(dev)
    except sqlite3.DatabaseError as exc:
        raise TinysenseError(f"cannot read the gateway database: {exc}") from None
    finally:
        conn.close()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    if not rows:
        print("no updates queued yet (tinysense ota push)")
        return 0
    for r in rows:
        act = r["active"]
        active = (f"update {act['update_id']} {act['label']} model {act['model_sha256'][:12]}"
                  f"{'' if act['confirmed'] else ' (on trial)'}" if act else "its deployed model")
        pend = r["pending"]
        pending = (f"update {pend['update_id']} {pend['state']}, {pend['received']:,}/"
                   f"{pend['bytes']:,} bytes ({pend['progress']:.0%}), node: "
                   f"{pend['step'] or 'not yet offered'}" if pend else "none")
        last = r["last"]
        print(f"device {r['device']}: active {active}; in progress {pending}; last update "
              f"{last['update_id']} {last['state']} ({last['step'] or '-'})")
    return 0


def _cancel(args) -> int:
    from tinysense.gateway.updates import device_arg

    dev = device_arg(args.device)
    conn, queue = _open(args.db)
    try:
        u = queue.cancel(dev)
    finally:
        conn.close()
    if u is None:
        raise TinysenseError(f"device {dev} has no update in progress")
    print(f"device {dev}: update {u.update_id} {u.state}"
          f"{' (the node is told with its next frame)' if u.state == 'cancelling' else ''}")
    return 0
