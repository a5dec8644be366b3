"""Provisioning on a real virtual board (MicroPython unix port): key in registry and on the
node, counter store started, rotation, refusals, and the key never printed or logged."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil

import pytest

from tinysense.boards import load_board
from tinysense.errors import TinysenseError
from tinysense.gateway import Registry, open_db
from tinysense.paths import FIRMWARE_DIR
from tinysense.provision import provision

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def vnode(tmp_path_factory):
    """A private virtual board with the uplink firmware (tsnode/uplink) deployed."""
    from tinysense.node.deploy import deploy
    from tinysense.node import open_node
    from tinysense.targets import Target
    from tinysense.targets.virtual import start_board, stop_board

    work = tmp_path_factory.mktemp("provision")
    src = work / "firmware"
    (src / "tsnode").mkdir(parents=True)
    shutil.copy(FIRMWARE_DIR / "tsnode" / "__init__.py", src / "tsnode")
    shutil.copytree(FIRMWARE_DIR / "tsnode" / "uplink", src / "tsnode" / "uplink",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cfg = load_board("ESP32_GENERIC")
    vb = start_board(str(cfg.path), directory=work / "board", parent_bound=True)
    try:
        with open_node(Target("virtual", vb.url, "provision test"), cfg) as node:
            deploy(node, src=src, build_dir=work / "build", progress=None)
            node.board_dir = work / "board"   # for the key file mode test
            yield node
    finally:
        stop_board(str(cfg.path), work / "board")


def _key_forms(key: bytes) -> list[str]:
    return [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), repr(key)[2:-1]]


def _registry_key(db, dev):
    conn = open_db(db)
    try:
        return Registry(conn).lookup(dev)
    finally:
        conn.close()


def test_provision_rotate_and_never_print(vnode, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "gateway.db"
    for stale in ("/uplink_key.bin", "/uplink.json", "/uplink_ctr.a", "/uplink_ctr.b"):
        if vnode.exists(stale):
            vnode.remove(stale)
    done = provision(vnode, 0x2A, db=db, transport="udp", gateway="127.0.0.1:47999")
    assert done.key_version == 1
    k1 = _registry_key(db, 0x2A).key
    assert vnode.get("/uplink_key.bin") == k1 and len(k1) == 16
    assert json.loads(vnode.get("/uplink.json")) == {
        "device_id": 42, "transport": "udp", "gateway": "127.0.0.1:47999"}
    # the node's counter store was started for this key: its key check value matches
    kcv = vnode.exec("from tsnode.uplink.counter import CounterStore, key_check\n"
                     "k = open('/uplink_key.bin', 'rb').read()\n"
                     "print(CounterStore('/').newest(key_check(k)) is not None)")
    assert kcv.strip() == "True"
    assert not vnode.exists("/uplink_key.new")
    conn = open_db(db)
    try:   # the registry records the node's board: `ota push` converts for it
        assert Registry(conn).board(0x2A) == vnode.board.name
    finally:
        conn.close()

    with pytest.raises(TinysenseError, match="already provisioned"):
        provision(vnode, 0x2A, db=db)
    with pytest.raises(TinysenseError, match="not in"):
        provision(vnode, 0x2B, db=db, rotate=True)

    vnode.mkdir("/uplink_q")
    vnode.put(b"\x01" * 30, "/uplink_q/00000005")
    with pytest.raises(TinysenseError, match="queued under its current key"):
        provision(vnode, 0x2A, db=db, rotate=True)
    assert vnode.get("/uplink_key.bin") == k1  # a refusal changes nothing
    done = provision(vnode, 0x2A, db=db, rotate=True, discard_queue=True)
    assert done.key_version == 2 and done.discarded_frames == 1
    k2 = _registry_key(db, 0x2A).key
    assert k2 != k1 and vnode.get("/uplink_key.bin") == k2
    assert json.loads(vnode.get("/uplink.json"))["gateway"] == "127.0.0.1:47999"  # kept

    out = capsys.readouterr()
    seen = out.out + out.err + caplog.text
    for key in (k1, k2):
        for form in _key_forms(key):
            assert form not in seen
    assert hashlib.sha256(k2).hexdigest() == vnode.sha256("/uplink_key.bin")


def test_cli_provision_prints_no_key(vnode, tmp_path, capsys, monkeypatch):
    """The CLI path (`tinysense provision`) with the node object patched in."""
    import contextlib

    import tinysense.node
    from tinysense.cli import main

    @contextlib.contextmanager
    def fake_open(target, board):
        yield vnode

    monkeypatch.setattr(tinysense.node, "open_node", fake_open)
    db = tmp_path / "cli.db"
    assert main(["provision", "--target", "virtual", "--device-id", "0x77", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "provisioned device 119 (0x00000077)" in out and "key version 1" in out
    key = _registry_key(db, 0x77).key
    for form in _key_forms(key):
        assert form not in out
    assert main(["provision", "--device-id", "0x77", "--db", str(db)]) == 1
    assert "already provisioned" in capsys.readouterr().err


def test_failed_install_is_repaired_by_rotate(vnode, tmp_path, monkeypatch):
    import tinysense.provision as prov

    db = tmp_path / "gateway.db"
    real_script = prov.script

    def broken(name, **params):
        if name == "uplink_install_key":
            return "raise OSError(28)"  # ENOSPC on the node's flash
        return real_script(name, **params)

    if vnode.exists("/uplink_q"):
        for name, _ in vnode.ls("/uplink_q"):
            vnode.remove(f"/uplink_q/{name}")
    monkeypatch.setattr(prov, "script", broken)
    with pytest.raises(TinysenseError, match="--rotate to retry"):
        provision(vnode, 0x51, db=db)
    assert _registry_key(db, 0x51).key_version == 1
    monkeypatch.setattr(prov, "script", real_script)
    done = provision(vnode, 0x51, db=db, rotate=True)
    assert done.key_version == 2
    assert vnode.get("/uplink_key.bin") == _registry_key(db, 0x51).key


def _mode(path) -> int:
    import stat
    return stat.S_IMODE(path.stat().st_mode)


def test_key_files_are_owner_only(vnode, tmp_path):
    """Every key writer: the node's uplink_key.bin (written by the VM in the virtual board's
    flash directory, staged, rotated) and the host registry are 0600, the flash dir 0700."""
    db = tmp_path / "keys" / "gateway.db"
    for stale in ("/uplink_key.bin", "/uplink.json", "/uplink_ctr.a", "/uplink_ctr.b"):
        if vnode.exists(stale):
            vnode.remove(stale)
    provision(vnode, 0x2C, db=db, transport="udp", gateway="127.0.0.1:47999")
    flash = vnode.board_dir / "flash"
    assert _mode(flash / "uplink_key.bin") == 0o600
    assert _mode(flash) == 0o700
    assert _mode(db) == 0o600
    provision(vnode, 0x2C, db=db, rotate=True, discard_queue=True)
    assert _mode(flash / "uplink_key.bin") == 0o600
    for f in db.parent.iterdir():   # the registry and any journal SQLite keeps beside it
        assert _mode(f) == 0o600, f
