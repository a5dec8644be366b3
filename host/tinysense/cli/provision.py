"""CLI for `tinysense provision`: parses arguments and calls tinysense.provision.provision."""

from __future__ import annotations

from tinysense.cli import add_target_args, env_default


def register(sub) -> None:
    p = sub.add_parser(
        "provision", help="give a node a new random uplink key, registered with the gateway",
        description="Generate a random per-device AES-128 key, store it in the gateway's "
                    "device registry and on the node (/uplink_key.bin, /uplink.json). The "
                    "key is never printed or logged.")
    add_target_args(p)
    p.add_argument("--device-id", required=True, help="uint32 device id (42 or 0x2a)")
    p.add_argument("--rotate", action="store_true",
                   help="replace the key of an already provisioned device")
    p.add_argument("--discard-queue", action="store_true",
                   help="drop frames the node still has queued under its current key")
    p.add_argument("--transport", choices=["udp", "mqtt", "serial"],
                   help="how the node sends (default: keep its setting, else udp)")
    p.add_argument("--gateway", metavar="HOST:PORT",
                   help="where the node sends (default: keep its setting, else 127.0.0.1:47800)")
    p.add_argument("--db", default=env_default("TINYSENSE_GATEWAY_DB"),
                   help="gateway SQLite file (default STATE_DIR/gateway.db; "
                        "env TINYSENSE_GATEWAY_DB)")
    p.set_defaults(func=_provision)


def _provision(args) -> int:
    from tinysense.gateway.run import parse_device_id
    from tinysense.node import open_node
    from tinysense.provision import db_display, provision

    device_id = parse_device_id(args.device_id)
    with open_node(args.target, args.board) as node:
        done = provision(node, device_id, db=args.db, rotate=args.rotate,
                         transport=args.transport, gateway=args.gateway,
                         discard_queue=args.discard_queue)
        where = f"{node.target.kind} {node.target.url or ''}".strip()
    verb = "rotated the key of" if args.rotate else "provisioned"
    print(f"{verb} device {done.device_id} (0x{done.device_id:08x}) on {where}: key version "
          f"{done.key_version}, transport {done.config['transport']} to "
          f"{done.config['gateway']}; registry {db_display(done.db)}")
    if done.discarded_frames:
        print(f"discarded {done.discarded_frames} frame(s) queued under the replaced key")
    return 0
