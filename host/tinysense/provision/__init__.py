"""Provisioning: give a node a fresh random uplink key, registered with the gateway.

The key is made with `secrets`, written to the gateway's registry and to the node's
/uplink_key.bin, and is never printed or logged (the result carries only the device id and
key version). Steps, ordered so that a failure at any point can be fixed by running the
same command again (with --rotate once the registry has the device):

  1. check the registry (a known device needs --rotate) and the node (tsnode firmware
     deployed; its frame queue must be empty or --discard-queue given, because frames
     sealed with the key being replaced would be rejected by the gateway afterwards);
  2. stage the key on the node as /uplink_key.new and verify it by SHA-256;
  3. commit the key (new key version) in the registry;
  4. on the node: start the frame counter for the new key, switch /uplink_key.bin to it,
     write /uplink.json (existing settings kept, device id/transport/gateway updated).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tinysense.errors import TinysenseError
from tinysense.gateway.registry import Registry, check_device_id, new_key
from tinysense.gateway.store import DEFAULT_DB, open_db
from tinysense.node.snippets import script

KEY_PATH = "/uplink_key.bin"
STAGED_PATH = "/uplink_key.new"
CONFIG_PATH = "/uplink.json"
QUEUE_DIR = "/uplink_q"
TRANSPORTS = ("udp", "mqtt", "serial")
DEFAULT_GATEWAY = "127.0.0.1:47800"


@dataclass(frozen=True)
class Provisioned:
    """What provisioning did (no key material)."""

    device_id: int
    key_version: int
    db: str
    config: dict
    discarded_frames: int


def _node_config(node) -> dict:
    if not node.exists(CONFIG_PATH):
        return {}
    try:
        config = json.loads(node.get(CONFIG_PATH))
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def _queued_frames(node) -> int:
    if not node.exists(QUEUE_DIR):
        return 0
    return sum(1 for name, is_dir in node.ls(QUEUE_DIR)
               if not is_dir and name != "dropped" and not name.endswith(".tmp"))


def provision(node, device_id: int, *, db: str | os.PathLike | None = None,
              rotate: bool = False, transport: str | None = None, gateway: str | None = None,
              discard_queue: bool = False) -> Provisioned:
    """Provision (or with `rotate`, re-key) `node` as `device_id`.

    Args:
        node: a connected tinysense.node.Node with the tsnode firmware deployed.
        device_id: uint32 device id.
        db: gateway database (default STATE_DIR/gateway.db, tinysense.paths).
        rotate: replace the key of an already provisioned device (key version + 1).
        transport: udp | mqtt | serial for /uplink.json (default: keep, else udp).
        gateway: HOST:PORT the node sends to (default: keep, else 127.0.0.1:47800).
        discard_queue: delete frames still queued under the node's current key.
    """
    check_device_id(device_id)
    if transport is not None and transport not in TRANSPORTS:
        raise TinysenseError(f"unknown transport {transport!r}; expected udp, mqtt or serial")
    db_path = str(DEFAULT_DB if db is None else db)
    conn = open_db(db_path)
    try:
        registry = Registry(conn)
        current = registry.lookup(device_id)
        if current is not None and not rotate:
            raise TinysenseError(
                f"device {device_id} (0x{device_id:08x}) is already provisioned in {db_path} "
                f"(key version {current.key_version}); use --rotate to give it a new key")
        if current is None and rotate:
            raise TinysenseError(f"device {device_id} (0x{device_id:08x}) is not in {db_path}; "
                                 "provision it first (without --rotate)")
        from tinysense.node import NodeError

        try:
            node.exec("import tsnode.uplink.counter", timeout=15)
        except NodeError:
            raise TinysenseError("the node has no tsnode uplink firmware; run `tinysense "
                                 "deploy` for it first, then provision again") from None
        queued = _queued_frames(node)
        if queued and not discard_queue:  # sealed with the key being replaced
            raise TinysenseError(
                f"the node still has {queued} frame(s) queued under its current key; the "
                "gateway would reject them once the key changes. Let it deliver them first, "
                "or pass --discard-queue to drop them")
        config = _node_config(node)
        config["device_id"] = device_id
        config["transport"] = transport or config.get("transport", "udp")
        config["gateway"] = gateway or config.get("gateway", DEFAULT_GATEWAY)

        key = new_key()
        node.put(key, STAGED_PATH)
        if node.sha256(STAGED_PATH) != hashlib.sha256(key).hexdigest():
            raise TinysenseError("the key staged on the node does not read back intact; check "
                                 "the connection and provision again")
        registered = registry.set_key(device_id, key, rotate=rotate)
        registry.set_board(device_id, node.board.name)   # what `ota push` converts for
        try:
            out = node.exec(script("uplink_install_key", staged=STAGED_PATH,
                                   config=json.dumps(config), discard=bool(discard_queue)),
                            timeout=30)
        except NodeError as exc:
            last = exc.traceback.strip().splitlines()[-1:] or ["?"]
            raise TinysenseError(
                f"the node failed to install the new key ({last[0]}); the registry already "
                f"has key version {registered.key_version}: run the same command with "
                "--rotate to retry") from None
        if not out.startswith("OK"):
            raise TinysenseError(f"the node did not confirm the key installation ({out.strip()!r});"
                                 " run the same command with --rotate to retry")
        if node.sha256(KEY_PATH) != hashlib.sha256(key).hexdigest():
            raise TinysenseError("the node's key file does not match the registry; run the same "
                                 "command with --rotate to retry")
        del key
        discarded = int(out.split()[1]) if len(out.split()) > 1 else 0
        return Provisioned(device_id, registered.key_version, db_path, config, discarded)
    finally:
        conn.close()


def db_display(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
