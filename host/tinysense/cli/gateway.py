"""CLI for the gateway: `tinysense gateway`, `tinysense uplinks`, `tinysense bench-gateway`."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys

from tinysense.cli import env_default
from tinysense.errors import TinysenseError
from tinysense.gateway.fleet_http import TOKEN_ENV
from tinysense.gateway.ingest import DEFAULT_BATCH


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=env_default("TINYSENSE_GATEWAY_DB"),
                        help="gateway SQLite file (default STATE_DIR/gateway.db; "
                             "env TINYSENSE_GATEWAY_DB)")


def register(sub) -> None:
    p = sub.add_parser("gateway", help="receive, verify, store and acknowledge uplink frames",
                       description="Receive uplink frames over UDP, MQTT and/or serial; "
                                   "authenticate, de-duplicate, store durably, acknowledge.")
    p.add_argument("--udp", metavar="HOST:PORT", help="listen for UDP frames, e.g. 0.0.0.0:47800")
    p.add_argument("--mqtt", metavar="URL",
                   help="subscribe to tinysense/+/up on a broker, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--serial", metavar="PORT",
                   help="read 'TSF1 <base64>' lines from a serial port or pyserial URL")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate")
    p.add_argument("--serial-acks", action="store_true",
                   help="write 'TSA1 <base64 ack>' lines back to the serial port")
    _db_arg(p)
    p.add_argument("--sync", choices=["full", "normal"], default="full",
                   help="SQLite synchronous: full = an acked frame survives a power cut "
                        "(default); normal = it survives a gateway crash")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"max frames per commit (default {DEFAULT_BATCH})")
    p.add_argument("--publish", metavar="URL", default=env_default("TINYSENSE_PUBLISH"),
                   help="republish each stored frame's records as labelled JSON on "
                        "tinysense/<device>/<name>, with Home Assistant discovery, e.g. "
                        "mqtt://127.0.0.1:1883 (env TINYSENSE_PUBLISH; docs/gateway.md)")
    p.add_argument("--decode-on-read", action="store_true",
                   help="store the authenticated payload only; decode it when read")
    p.add_argument("--max-age", type=int, default=None,
                   help="reject frames more than this many counters behind the newest")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no line per frame and no rejection log (start/stop summary only)")
    p.add_argument("--http", metavar="HOST:PORT",
                   help="serve the fleet page (read-only), e.g. 127.0.0.1:8080; an address "
                        "other than loopback needs --http-token")
    p.add_argument("--http-token", default=env_default(TOKEN_ENV),
                   help=f"token the fleet page requires (env {TOKEN_ENV}, which keeps it "
                        "out of the process list)")
    p.set_defaults(func=_gateway)

    p = sub.add_parser("uplinks", help="print the frames the gateway stored",
                       description="Read the gateway's store: one JSON object per frame "
                                   "(JSON Lines) or CSV with one row per record.")
    p.add_argument("--device", help="only this device id (42 or 0x2a)")
    p.add_argument("--since", help="only frames received at or after this time "
                                   "(ISO 8601, unix seconds, or an age: 30s, 10m, 2h, 1d)")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    _db_arg(p)
    p.set_defaults(func=_uplinks)

    p = sub.add_parser("devices", help="list the devices in the gateway registry (no keys); "
                                        "`devices remove ID` removes one",
                       description="List the registered devices (never their keys), or remove "
                                   "one: a running gateway refuses its frames from its next "
                                   "registry poll (within a second); stored frames are kept.")
    _db_arg(p)
    p.set_defaults(func=_devices)
    dsub = p.add_subparsers(dest="action", metavar="{remove,model}")
    r = dsub.add_parser("remove", help="remove a device and its key from the registry")
    r.add_argument("device_id", help="the device id (42 or 0x2a)")
    # SUPPRESS: `devices --db X remove ID` keeps X (a sub-parser default would overwrite it)
    r.add_argument("--db", default=argparse.SUPPRESS,
                   help="gateway SQLite file (default STATE_DIR/gateway.db; env "
                        "TINYSENSE_GATEWAY_DB)")
    r.set_defaults(func=_devices_remove)
    m = dsub.add_parser("model", help="record which model a device runs (its class labels "
                                      "then name its results)")
    m.add_argument("device_id", help="the device id (42 or 0x2a)")
    m.add_argument("meta", metavar="META_JSON", help="the model's meta.json")
    m.add_argument("--model-id", type=int, default=1,
                   help="the app's model_id for this model (default 1)")
    m.add_argument("--name", help="the model's name (default: meta.json's, or its folder)")
    m.add_argument("--db", default=argparse.SUPPRESS,
                   help="gateway SQLite file (default STATE_DIR/gateway.db; env "
                        "TINYSENSE_GATEWAY_DB)")
    m.set_defaults(func=_devices_model)

    p = sub.add_parser("bench-gateway", help="measure the gateway's sustained ingest rate",
                       description="Seal frames for many devices, then ingest them "
                                   "(verify + decrypt + durable SQLite store) and report "
                                   "frames/s and latency to ack.")
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    p.add_argument("--sync", choices=["full", "normal"], default="full")
    p.add_argument("--rate", type=float, default=None,
                   help="offered load for the latency run (default 80%% of the measured max)")
    p.add_argument("--db", help="SQLite file to use (default: a temporary file)")
    p.add_argument("--no-node", action="store_true",
                   help="skip measuring the node's seal cost on the virtual board")
    p.add_argument("--publish", metavar="URL",
                   help="instead: ingest with and without the MQTT publisher on this broker, "
                        "and its drain rate (e.g. mqtt://127.0.0.1:1883; default 20,000 frames)")
    p.add_argument("--fleet", action="store_true",
                   help="instead: what the fleet page (gateway --http) costs: its first read "
                        "of the frames, /api/fleet, /api/devices/ID (default 100,000 frames)")
    p.set_defaults(func=_bench)


def _gateway(args) -> int:
    import logging

    from tinysense.cli import EXIT_USAGE
    from tinysense.gateway.fleet_http import HttpUsageError
    from tinysense.gateway.run import GatewayConfig, run_gateway

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)

    def terminate(signum, frame):  # SIGTERM stops as cleanly as Ctrl-C
        raise KeyboardInterrupt

    if args.publish:   # a bad URL is a usage error: one line, exit 2, nothing started
        from tinysense.cli import EXIT_USAGE
        from tinysense.gateway.publish import parse_publish_url

        try:
            parse_publish_url(args.publish)
        except TinysenseError as exc:
            print(f"tinysense: error: --publish: {exc}", file=sys.stderr)
            return EXIT_USAGE
    signal.signal(signal.SIGTERM, terminate)
    config = GatewayConfig(db=args.db, udp=args.udp, mqtt=args.mqtt, serial=args.serial,
                           baud=args.baud, serial_acks=args.serial_acks,
                           synchronous=args.sync.upper(), max_batch=args.batch,
                           max_age=args.max_age, decode=not args.decode_on_read,
                           publish=args.publish,
                           http=args.http, http_token=args.http_token)
    try:
        counts = run_gateway(config, lines=not args.quiet)
    except HttpUsageError as exc:   # a bad --http value or a missing token: usage, exit 2
        print(f"tinysense: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0 if counts is not None else 1


def _damaged(db: str | None, exc: Exception) -> TinysenseError:
    """One line for a database that opened but could not be read (damaged pages, a foreign
    schema, a value no gateway wrote)."""
    from tinysense.gateway.store import DEFAULT_DB

    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return TinysenseError(f"cannot read gateway database {db or DEFAULT_DB}: {first} "
                          f"({type(exc).__name__}); is it damaged, or not written by "
                          "`tinysense gateway`?")


def _uplinks(args) -> int:
    from tinysense.gateway.run import list_uplinks, parse_device_id, parse_since, write_uplinks

    device = parse_device_id(args.device) if args.device else None
    since = parse_since(args.since) if args.since else None
    try:
        write_uplinks(list_uplinks(args.db, device, since), args.format, sys.stdout)
    except (sqlite3.DatabaseError, ValueError, OverflowError, KeyError, TypeError) as exc:
        raise _damaged(args.db, exc) from None
    return 0


def _devices(args) -> int:
    from tinysense.gateway.run import list_devices

    try:
        devices = list_devices(args.db)
    except (sqlite3.DatabaseError, ValueError, OverflowError, KeyError, TypeError) as exc:
        raise _damaged(args.db, exc) from None
    if not devices:
        print("no devices provisioned yet (tinysense provision --device-id ID)")
        return 0
    print(f"{'device':10} {'id':>10} {'key v':>5} {'frames':>8}  {'last seen':29}  "
          f"{'created':29}  model")
    for d in devices:
        models = ", ".join(
            f"{m['model_id']}: {m['name']} ({', '.join(m['labels']) or 'no labels'}; "
            f"meta {m['meta_sha256'][:12]})" for m in d["models"]) or "-"
        print(f"{d['device']:10} {d['device_id']:10d} {d['key_version']:5d} {d['frames']:8d}  "
              f"{d['last_seen'] or '-':29}  {d['created']:29}  {models}")
    return 0


def _devices_model(args) -> int:
    from tinysense.gateway.run import parse_device_id, set_device_model

    device_id = parse_device_id(args.device_id)
    try:
        m = set_device_model(args.db, device_id, args.meta, args.model_id, args.name)
    except sqlite3.DatabaseError as exc:
        raise _damaged(args.db, exc) from None
    print(f"device {device_id} (0x{device_id:08x}) model {m.model_id}: {m.name}, labels "
          f"{', '.join(m.labels) or '(none)'} (meta sha256 {m.meta_sha256[:12]})")
    return 0


def _devices_remove(args) -> int:
    from pathlib import Path

    from tinysense.gateway import Registry, open_db
    from tinysense.gateway.run import parse_device_id
    from tinysense.gateway.store import DEFAULT_DB

    device_id = parse_device_id(args.device_id)
    path = Path(args.db) if args.db is not None else DEFAULT_DB
    if not path.exists():
        raise TinysenseError(f"no gateway database at {path}; point --db at one")
    try:
        conn = open_db(path)
        try:
            removed = Registry(conn).remove(device_id)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, exc) from None
    if not removed:
        raise TinysenseError(f"device {device_id} (0x{device_id:08x}) is not in the registry "
                             f"{path} (`tinysense devices` lists them)")
    print(f"removed device {device_id} (0x{device_id:08x}) and its key from {path}; a running "
          "gateway refuses its frames from now on (its stored frames are kept)")
    return 0


def _bench(args) -> int:
    if args.fleet:
        from tinysense.bench.fleet import print_fleet_bench, run_fleet_bench

        frames = args.frames if args.frames != 200_000 else 100_000
        print_fleet_bench(run_fleet_bench(frames=frames, devices=args.devices,
                                          progress=sys.stderr), sys.stdout)
        return 0
    if args.publish:
        from tinysense.bench.publish import print_publish_bench, run_publish_bench

        frames = args.frames if args.frames != 200_000 else 20_000
        r = run_publish_bench(args.publish, frames=frames, devices=args.devices,
                              batch=args.batch, synchronous=args.sync.upper(),
                              progress=sys.stderr)
        print_publish_bench(r, sys.stdout)
        return 0
    from tinysense.bench.gateway import print_bench, run_bench

    result = run_bench(frames=args.frames, devices=args.devices, batch=args.batch,
                       synchronous=args.sync.upper(), db=args.db, node=not args.no_node,
                       sustained_rate=args.rate,
                       progress=sys.stderr)
    print_bench(result, sys.stdout)
    return 0
