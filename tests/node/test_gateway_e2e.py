"""End to end: the node firmware on the real MicroPython unix port sends N frames over UDP
and over MQTT (a real mosquitto) to the real gateway; the gateway stores exactly N,
decrypted and decoded correctly, and the node's queue drains (every frame acknowledged)."""

from __future__ import annotations

import json

import pytest
from uplink_helpers import expected_records, provision_flash, run_mp

from tinysense.gateway import Registry, Store, new_key, open_db
from tinysense.gateway.run import GatewayConfig, RunningGateway

pytestmark = pytest.mark.node

DEV = 0x0BADCAFE  # the id send_node.py uses


def _setup(tmp_path):
    key = new_key()
    flash = tmp_path / "flash"
    provision_flash(flash, key)
    db = tmp_path / "gateway.db"
    conn = open_db(db)
    Registry(conn).set_key(DEV, key)
    conn.close()
    return flash, db


def _send(flash, transport: str, gateway: str, first: int, n: int) -> dict:
    out = run_mp("send_node.py", str(flash), transport, gateway, str(first), str(n), "64",
                 "8000")
    line = next(x for x in out.splitlines() if x.startswith("STATS "))
    return json.loads(line[6:])


def _check_store(db, n: int) -> None:
    conn = open_db(db)
    try:
        rows = list(Store(conn).frames(device_id=DEV))
        assert len(rows) == n, f"stored {len(rows)} frames, expected {n}"
        assert len({r.counter for r in rows}) == n
        by_index = {}
        for r in rows:
            assert r.decode_error is None
            decoded = json.loads(r.decoded)
            index = decoded["records"][0]["value"]
            by_index[index] = decoded["records"]
        assert sorted(by_index) == list(range(n))
        for i, recs in by_index.items():
            assert recs == expected_records(i), f"frame {i} decoded differently"
        assert Store(conn).rejection_counts() == {}
    finally:
        conn.close()


def _run(tmp_path, config: GatewayConfig, transport: str, address: str | None, n: int):
    flash, db = _setup(tmp_path)
    config.db = str(db)
    gw = RunningGateway(config, on_frame=None)
    try:
        gateway = address or gw.addresses["udp"]
        first = _send(flash, transport, gateway, 0, n)
        second = _send(flash, transport, gateway, n, n)  # a new node process: a "reboot"
    finally:
        counts = gw.close()
    for stats in (first, second):
        assert stats["queued"] == 0 and stats["acked"] == n and stats["bad_acks"] == 0, stats
    assert second["boot"] == first["boot"] + 1
    assert counts == {}
    _check_store(db, 2 * n)


def test_node_over_udp_to_gateway(tmp_path):
    _run(tmp_path, GatewayConfig(udp="127.0.0.1:0"), "udp", None, 40)


@pytest.mark.mosquitto
def test_node_over_mqtt_to_gateway(tmp_path, mosquitto):
    host, port = mosquitto
    config = GatewayConfig(mqtt=f"mqtt://{host}:{port}?client_id=gw-e2e")
    _run(tmp_path, config, "mqtt", f"{host}:{port}", 30)


def test_node_over_serial_pty_with_acks(tmp_path):
    """The node's stdin/stdout are a pty (its "UART"); the gateway opens the other end by
    name, reads TSF1 lines and writes TSA1 acks back, which the node reads to drain its
    queue."""
    import os
    import subprocess

    from conftest import micropython_exe
    from uplink_helpers import MP_DIR, mp_env

    flash, db = _setup(tmp_path)
    master, slave = os.openpty()
    config = GatewayConfig(db=str(db), serial=os.ttyname(slave), serial_acks=True)
    gw = RunningGateway(config, on_frame=None)
    n = 25
    try:  # "serial+ack": send_node.py turns on the node's TSA1 ack reading
        proc = subprocess.run([micropython_exe(), "-X", "heapsize=512K",
                               str(MP_DIR / "send_node.py"), str(flash), "serial+ack", "-",
                               "0", str(n), "64", "5000"],
                              stdin=master, stdout=master, stderr=subprocess.PIPE,
                              env=mp_env(), timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
    finally:
        counts = gw.close()
        os.close(master)
        os.close(slave)
    queue_left = [p.name for p in (flash / "uplink_q").iterdir() if p.name != "dropped"]
    assert queue_left == [], "the node did not get acks for every frame"
    assert counts == {}
    _check_store(db, n)
