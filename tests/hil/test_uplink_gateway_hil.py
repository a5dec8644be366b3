"""The uplink end to end over the serial transport (what QEMU and USB-powered nodes use):
the node seals frames and prints them on its UART, the gateway reads the same port, checks
and stores them, and `tinysense uplinks` reads back exactly what the node sent."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tinysense.gateway.registry import Registry
from tinysense.gateway.run import GatewayConfig, RunningGateway, list_uplinks
from tinysense.gateway.store import open_db
from tinysense.pytest_plugin import reconnect

pytestmark = pytest.mark.hil
FRAMES = 12
DEVICE = 0x7E58
ROOT = "/hil_uplink"  # never the node's own /uplink_* files

# Node side (tsnode.uplink's API): a fresh counter store under ROOT, then FRAMES frames of
# one event and one reading each over the serial transport ("TSF1 <base64>" lines).
REMOVE = """
import os
def _rm(p):
    try:
        names = os.listdir(p)
    except OSError:  # a file
        os.remove(p)
        return
    for n in names:
        _rm(p + '/' + n)
    os.rmdir(p)
try:
    _rm({root!r})
except OSError:
    pass
"""
SEND = REMOVE + """
import time
from tsnode.uplink.counter import CounterStore
from tsnode.uplink.sender import Uplink
os.mkdir({root!r})
CounterStore({root!r}).create({key!r})
up = Uplink(config={{'device_id': {device}, 'transport': 'serial'}}, key={key!r}, root={root!r})
time.sleep_ms({delay})
for i in range({n}):
    up.send([{{'type': 'event', 'code': 9, 't_ms': 100 + i, 'value': i}},
             {{'type': 'reading', 'sensor': 1, 't_ms': 100 + i, 'values': [i, 2 * i]}}],
            True, 300)
print('LEFT', up.flush(300))
"""


def test_serial_frames_reach_the_gateway_store(node, tmp_path):
    key = os.urandom(16)
    db = tmp_path / "gateway.db"
    conn = open_db(db)
    Registry(conn).set_key(DEVICE, key)
    conn.close()

    # The node waits while the gateway takes over the port (opening a port discards what
    # already waits in it), then sends; the host side lets go of the port so the gateway is
    # the only reader, as with a real serial gateway.
    node.transport.exec_raw_no_follow(SEND.format(root=ROOT, key=key, device=DEVICE,
                                                  delay=1500, n=FRAMES))
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
        node.exec(REMOVE.format(root=ROOT))
    assert len(accepted) == FRAMES, f"gateway accepted {len(accepted)}; rejections: {counts}"
    stored = list(list_uplinks(str(db), device=DEVICE))
    assert [f["counter"] for f in stored] == sorted(f["counter"] for f in stored)
    assert len({f["counter"] for f in stored}) == FRAMES
    values = sorted(f["records"][0]["value"] for f in stored)
    assert values == list(range(FRAMES))
    assert {f["source"].split(":")[0] for f in stored} == {"serial"}
    assert not any(counts.values()), counts
