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
