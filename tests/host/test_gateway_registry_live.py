"""A key rotation or device removal by another process reaches a running gateway: frames
sealed with the old key (or for the removed device) are refused from the next registry poll
on (at most KeyCache.refresh_s = 1 s later), not only after a restart or a new-key frame."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from test_gateway_kill import Gateway
from tinysense.gateway import Registry, Store, new_key, open_db
from tinysense.gateway.core import Gateway as CoreGateway
from tinysense.uplink import PTYPE_RECORDS, encode_records, seal

DEV = 0x0BADC0DE


def _frame(key: bytes, counter: int) -> bytes:
    pt = encode_records([{"type": "reading", "sensor": 1, "t_ms": counter, "values": [1]}],
                        boot=1)
    return seal(key, DEV, counter, PTYPE_RECORDS, pt)


def _acked(sock, port, key, counter) -> bool:
    sock.sendto(_frame(key, counter), ("127.0.0.1", port))
    try:
        sock.recvfrom(2048)
        return True
    except socket.timeout:
        return False


def _stored(db) -> set[int]:
    conn = open_db(db)
    try:
        return {r[0] for r in conn.execute("SELECT counter FROM frames WHERE device_id=?",
                                           (DEV,))}
    finally:
        conn.close()


def _until_refused(sock, port, key, ctr):
    """Send frames sealed with `key` (counters after `ctr`) until the gateway refuses one
    (a generous 60 s deadline: a loaded machine), then three more that must be refused too.
    Returns (last counter, the refused counters; empty if none was refused in time)."""
    refused = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ctr += 1
        if not _acked(sock, port, key, ctr):
            refused.append(ctr)
            break
        time.sleep(0.2)
    if refused:
        for _ in range(3):                       # and it keeps refusing
            ctr += 1
            assert not _acked(sock, port, key, ctr)
            refused.append(ctr)
    return ctr, refused


def test_rotation_and_removal_reach_a_running_gateway_process(tmp_path):
    db = tmp_path / "gateway.db"
    conn = open_db(db)
    k1, k2 = new_key(), new_key()
    Registry(conn).set_key(DEV, k1)
    gw = Gateway(db, tmp_path, 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    ctr = 1
    try:
        assert _acked(sock, gw.port, k1, ctr)
        Registry(conn).set_key(DEV, k2, rotate=True)   # another process: provision --rotate
        ctr, refused_old = _until_refused(sock, gw.port, k1, ctr)
        assert refused_old, "the gateway kept accepting the old key"
        ctr += 1
        assert _acked(sock, gw.port, k2, ctr)            # the new key works
        removed = subprocess.run(                        # `tinysense devices remove`
            [sys.executable, "-m", "tinysense", "devices", "remove", hex(DEV), "--db", str(db)],
            capture_output=True, text=True, timeout=60)
        assert removed.returncode == 0, removed.stderr
        assert f"removed device {DEV} (0x{DEV:08x})" in removed.stdout
        ctr, refused_gone = _until_refused(sock, gw.port, k2, ctr)
        assert refused_gone, "the gateway kept accepting a removed device"
    finally:
        sock.close()
        gw.interrupt()
        conn.close()
    assert not _stored(db) & set(refused_old + refused_gone)


def test_registry_change_takes_effect_at_the_next_poll(tmp_path):
    """Deterministic (a fake clock): the first batch once refresh_s has passed after another
    connection's commit refuses old-key frames, with no bad tag or new-key frame needed."""
    db = tmp_path / "gateway.db"
    other = open_db(db)
    k1, k2 = new_key(), new_key()
    Registry(other).set_key(DEV, k1)
    now = [100.0]
    gw = CoreGateway(Store(open_db(db)))
    gw.keys.clock = lambda: now[0]
    assert gw.handle(_frame(k1, 1)) is not None
    Registry(other).set_key(DEV, k2, rotate=True)
    now[0] += 0.5
    assert gw.handle(_frame(k1, 2)) is not None        # before the poll: still cached
    now[0] += gw.keys.refresh_s
    assert gw.handle(_frame(k1, 3)) is None             # the next poll drops the old key
    assert gw.handle(_frame(k2, 4)) is not None
    Registry(other).remove(DEV)
    other.commit()
    now[0] += gw.keys.refresh_s
    assert gw.handle(_frame(k2, 5)) is None
    assert gw.rejections["bad_tag"] == 1 and gw.rejections["unknown_device"] == 1
    other.close()
