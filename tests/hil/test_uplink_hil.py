"""The uplink on any --target: the deployed firmware seals frames the host opens (serial
lines work everywhere, QEMU included); on the virtual board also UDP with acks."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading

import pytest

from tinysense.uplink import PTYPE_ACK, decode_batch, encode_ack, open_frame, seal

pytestmark = pytest.mark.hil
ROOT = "/tsuplink_test"  # never the node's real /uplink_* files
DEVICE = 0x7E57


def _fresh(node, key: bytes, config: dict) -> None:
    node.exec(f"import os\ntry:\n    names = os.listdir('{ROOT}/uplink_q')\nexcept OSError:\n"
              f"    names = []\nfor n in names:\n    os.remove('{ROOT}/uplink_q/' + n)\n")
    node.mkdir(ROOT)
    node.put(key, f"{ROOT}/uplink_key.bin")
    node.put(json.dumps(config).encode(), f"{ROOT}/uplink.json")
    node.exec(f"from tsnode.uplink.counter import CounterStore\n"
              f"CounterStore('{ROOT}').create(open('{ROOT}/uplink_key.bin', 'rb').read())\n")


_SEND = """
from tsnode.uplink import Uplink
up = Uplink(root='{root}')
for i in range({n}):
    up.send([{{'type': 'event', 'code': 9, 't_ms': 100 + i, 'value': i}},
             {{'type': 'reading', 'sensor': 1, 't_ms': 100 + i, 'values': [i, 2 * i]}}],
            True, 300)
left = len(up.queue)
for _ in range(40):
    if not left:
        break
    left = up.flush(100)
up.close()
print('LEFT', left, up.counter.boot)
"""


def _check(frames: list[bytes], key: bytes, n: int) -> None:
    values = []
    for f in frames:
        header, plaintext = open_frame(key, f)
        assert header.device_id == DEVICE
        batch = decode_batch(plaintext)
        i = batch.records[0]["value"]
        assert batch.records == [
            {"type": "event", "code": 9, "t_ms": 100 + i, "value": i},
            {"type": "reading", "sensor": 1, "t_ms": 100 + i, "dtype": "i16",
             "values": [i, 2 * i]}]
        values.append(i)
    assert sorted(set(values)) == list(range(n))


def test_serial_frames_from_the_node(node):
    key = os.urandom(16)
    _fresh(node, key, {"device_id": DEVICE, "transport": "serial"})
    out = node.exec(_SEND.format(root=ROOT, n=10), timeout=60)
    frames = [base64.b64decode(line[5:]) for line in out.splitlines()
              if line.startswith("TSF1 ")]
    assert len(frames) == 10
    assert out.splitlines()[-1] == "LEFT 0 1"
    _check(frames, key, 10)


def test_udp_with_acks_on_the_virtual_board(node):
    if node.target.kind != "virtual":
        pytest.skip("UDP to 127.0.0.1 needs the virtual board (a board needs WiFi and the "
                    "host's LAN address)")
    key = os.urandom(16)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    got: list[bytes] = []
    stop = threading.Event()

    def gateway():
        acks = 0
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(2048)
            except OSError:
                continue
            header, _ = open_frame(key, data)
            got.append(data)
            sock.sendto(seal(key, DEVICE, acks, PTYPE_ACK, encode_ack([header.counter]),
                             direction=1), addr)
            acks += 1

    _fresh(node, key, {"device_id": DEVICE, "transport": "udp",
                       "gateway": f"127.0.0.1:{sock.getsockname()[1]}"})
    thread = threading.Thread(target=gateway, daemon=True)
    thread.start()
    try:
        out = node.exec(_SEND.format(root=ROOT, n=25), timeout=60)
    finally:
        stop.set()
        thread.join()
        sock.close()
    assert out.splitlines()[-1] == "LEFT 0 1"
    _check(got, key, 25)
    assert node.ls(f"{ROOT}/uplink_q") == []
