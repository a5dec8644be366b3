"""`tinysense demo`: the live demo (gateway + node + model; see tinysense.demo), or --selfcheck."""

from __future__ import annotations

from tinysense.cli import env_default
from tinysense.errors import TinysenseError
from tinysense.node.selfcheck import SelfCheck, run_selfcheck


def selfcheck_demo(target: str = "virtual", board: str | None = None) -> SelfCheck:
    """Deploy the firmware to the node and print its self-check; returns the parsed check."""
    from tinysense.node.deploy import deploy
    from tinysense.node import open_node

    with open_node(target, board) as node:
        print(f"node: {node.target.kind} on {node.target.url} ({node.target.reason}), "
              f"board {node.board.name}")
        deploy(node)
        check = run_selfcheck(node)
        print(check.text, end="")
        return check


def cmd_demo(args) -> int:
    if args.selfcheck:
        selfcheck_demo(args.target, args.board)
        return 0
    from tinysense.demo import run_demo
    from tinysense.gateway.run import parse_device_id

    wifi = (args.wifi_ssid, args.wifi_password or "") if args.wifi_ssid else None
    result = run_demo(args.target, args.board, model=args.model, speed=args.speed,
                      device_id=parse_device_id(args.device_id),
                      gateway_host=args.gateway_host, gateway_port=args.gateway_port,
                      wifi=wifi)
    if not result.ok:
        raise TinysenseError("the demo's checks failed (see the lines marked FAIL above)")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="live demo: gateway + node + activity model, predictions vs truth",
        description="Start a gateway and a node (a fresh virtual board, or a fresh RV32 QEMU "
        "board with its uplink over the console, unless --target names a board), deploy and "
        "provision it, replay the held-out recordings through the app, "
        "print what the gateway receives and check it against tflite-micro and meta.json.")
    p.add_argument("--target", default=env_default("TINYSENSE_TARGET", "virtual"),
                   help="virtual (default) | qemu-rv32 (with --board ESP32_GENERIC_C3; qemu "
                   "falls back to it) | a serial port or pyserial URL of a board")
    p.add_argument("--board", default=env_default("TINYSENSE_BOARD", "ESP32_GENERIC"),
                   help="board id from board_configs/ (env TINYSENSE_BOARD)")
    p.add_argument("--model", default="activity", choices=("activity", "energy", "anomaly"))
    p.add_argument("--speed", type=float, default=None,
                   help="replay speed, 0 unpaced (default: about 20 s of playing, 20x for "
                   "activity; unpaced on the RV32 QEMU board, whose clock is emulated)")
    p.add_argument("--device-id", default="0x7e5d0001", help="uplink device id")
    p.add_argument("--gateway-host", default=env_default("TINYSENSE_GATEWAY_HOST"),
                   help="address the node sends to (default 127.0.0.1, or this host's LAN "
                   "address for a board)")
    p.add_argument("--gateway-port", type=int, default=0,
                   help="gateway UDP port (default: any free port; 47800 for a board)")
    p.add_argument("--wifi-ssid", default=env_default("TINYSENSE_WIFI_SSID"),
                   help="WiFi network for a board (env TINYSENSE_WIFI_SSID)")
    p.add_argument("--wifi-password", default=env_default("TINYSENSE_WIFI_PASSWORD"),
                   help="WiFi password (env TINYSENSE_WIFI_PASSWORD)")
    p.add_argument("--selfcheck", action="store_true",
                   help="only deploy and print the node's self-check")
    p.set_defaults(func=cmd_demo)
