"""The uplink end to end over the serial transport (what QEMU and USB-powered nodes use):
the node seals frames and prints them on its UART, the gateway reads the same port, checks
and stores them, and `tinysense uplinks` reads back exactly what the node sent."""

from __future__ import annotations

import os
import threading
import time

import pytest
from test_uplink_hil import _SEND, DEVICE, ROOT, _fresh  # node-side set-up under ROOT

from tinysense.gateway.registry import Registry
from tinysense.gateway.run import GatewayConfig, RunningGateway, list_uplinks
from tinysense.gateway.store import open_db
from tinysense.pytest_plugin import reconnect

pytestmark = pytest.mark.hil
FRAMES = 12


def test_serial_frames_reach_the_gateway_store(node, tmp_path):
    key = os.urandom(16)
    db = tmp_path / "gateway.db"
    conn = open_db(db)
    Registry(conn).set_key(DEVICE, key)
    conn.close()
    _fresh(node, key, {"device_id": DEVICE, "transport": "serial"})

    # The node waits while the gateway takes over the port (opening a port discards what
    # already waits in it), then sends; the host side lets go of the port so the gateway is
    # the only reader, as with a real serial gateway.
    code = "import time\ntime.sleep_ms(1500)\n" + _SEND.format(root=ROOT, n=FRAMES)
    node.transport.exec_raw_no_follow(code)
    node.transport.close()
    accepted, done = [], threading.Event()

    def on_frame(a):
        accepted.append(a)
        if len(accepted) >= FRAMES:
            done.set()

    gateway = RunningGateway(GatewayConfig(db=str(db), serial=node.target.url), on_frame)
    try:
        done.wait(60)
        time.sleep(0.3)  # a duplicate would arrive now
    finally:
        counts = gateway.close()
        reconnect(node)
    assert len(accepted) == FRAMES, f"gateway accepted {len(accepted)}; rejections: {counts}"
    stored = list(list_uplinks(str(db), device=DEVICE))
    assert [f["counter"] for f in stored] == sorted(f["counter"] for f in stored)
    assert len({f["counter"] for f in stored}) == FRAMES
    values = sorted(f["records"][0]["value"] for f in stored)
    assert values == list(range(FRAMES))
    assert {f["source"].split(":")[0] for f in stored} == {"serial"}
    assert not any(counts.values()), counts
