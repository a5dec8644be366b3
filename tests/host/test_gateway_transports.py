"""The gateway behind its real transports: UDP on loopback, a real mosquitto, a pty and a
socket:// serial URL. Frames are sealed by the host codec; acks are opened and checked."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time

import pytest

from tinysense.gateway import Registry, new_key, open_db
from tinysense.gateway.run import GatewayConfig, RunningGateway
from tinysense.uplink import PTYPE_RECORDS, decode_ack, encode_records, open_frame, seal

DEV = 0x00C0FFEE


@pytest.fixture
def provisioned(tmp_path):
    db = tmp_path / "gateway.db"
    conn = open_db(db)
    key = new_key()
    Registry(conn).set_key(DEV, key)
    conn.close()
    return db, key


def frame(key: bytes, counter: int) -> bytes:
    pt = encode_records([{"type": "reading", "sensor": 4, "t_ms": counter * 10,
                          "values": [counter, -counter]}], boot=2)
    return seal(key, DEV, counter, PTYPE_RECORDS, pt)


def ack_counters(key: bytes, ack: bytes) -> list[int]:
    header, plaintext = open_frame(key, ack)
    assert header.direction == 1 and header.device_id == DEV
    return decode_ack(plaintext)


def stored(db) -> dict[int, str]:
    conn = open_db(db)
    try:
        return dict(conn.execute("SELECT counter, decoded FROM frames WHERE device_id=?",
                                 (DEV,)).fetchall())
    finally:
        conn.close()


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_udp_end_to_end(provisioned):
    db, key = provisioned
    gw = RunningGateway(GatewayConfig(db=str(db), udp="127.0.0.1:0"), on_frame=None)
    try:
        host, port = gw.addresses["udp"].rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(5)
        frames = [frame(key, c) for c in range(40)]
        acked: set[int] = set()
        for f in frames + frames[:5]:  # the last 5 are re-sends: acked again, stored once
            sock.sendto(f, (host, int(port)))
            acked.update(ack_counters(key, sock.recvfrom(2048)[0]))
        forged = bytearray(frame(key, 99))
        forged[-1] ^= 0x40
        sock.sendto(bytes(forged), (host, int(port)))
        sock.close()
        assert acked == set(range(40))
        assert wait_for(lambda: gw.gateway.rejections["bad_tag"] == 1)
    finally:
        counts = gw.close()
    rows = stored(db)
    assert sorted(rows) == list(range(40))
    assert '"values":[39,-39]' in rows[39]
    assert counts == {"bad_tag": 1, "replay": 5}


@pytest.mark.mosquitto
def test_mqtt_end_to_end(provisioned, mosquitto):
    import paho.mqtt.client as mqtt

    db, key = provisioned
    host, port = mosquitto
    gw = RunningGateway(GatewayConfig(db=str(db), mqtt=f"mqtt://{host}:{port}?client_id=gw-t1"),
                        on_frame=None)
    acked: set[int] = set()
    got = threading.Event()
    subscribed = threading.Event()

    def on_message(client, userdata, msg):
        assert msg.topic == f"tinysense/{DEV:08x}/ack"
        acked.update(ack_counters(key, msg.payload))
        if len(acked) >= 30:
            got.set()

    node = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                       client_id="fake-node", protocol=mqtt.MQTTv311)
    node.on_message = on_message
    node.on_subscribe = lambda *a, **k: subscribed.set()
    try:
        node.connect(host, port)
        node.loop_start()
        node.subscribe(f"tinysense/{DEV:08x}/ack", qos=1)
        assert subscribed.wait(5)
        for c in range(30):
            node.publish(f"tinysense/{DEV:08x}/up", frame(key, c), qos=1).wait_for_publish(5)
        node.publish(f"tinysense/{DEV:08x}/up", frame(key, 3), qos=1).wait_for_publish(5)
        assert got.wait(10), f"acks for {sorted(acked)}"
    finally:
        node.loop_stop()
        node.disconnect()
        counts = gw.close()
    assert acked == set(range(30))
    assert sorted(stored(db)) == list(range(30))
    assert counts == {"replay": 1}


def _serial_lines(key, counters) -> bytes:
    out = b"MicroPython v1.29 on a node\r\n>>> some console noise\n"
    for c in counters:
        out += b"TSF1 " + base64.b64encode(frame(key, c)) + b"\r\n"
    return out + b"TSF1 !!!not base64!!!\n"


def test_serial_over_a_pty_with_acks(provisioned):
    db, key = provisioned
    master, slave = os.openpty()
    name = os.ttyname(slave)
    gw = RunningGateway(GatewayConfig(db=str(db), serial=name, serial_acks=True), on_frame=None)
    try:
        os.write(master, _serial_lines(key, range(10)))
        assert wait_for(lambda: len(stored(db)) == 10)
        buf = b""
        acked: set[int] = set()
        deadline = time.monotonic() + 5
        while acked != set(range(10)) and time.monotonic() < deadline:
            buf += os.read(master, 4096)
            *lines, buf = buf.split(b"\n")
            for line in lines:
                assert line.startswith(b"TSA1 ")
                acked.update(ack_counters(key, base64.b64decode(line[5:])))
        assert acked == set(range(10))
    finally:
        counts = gw.close()
        os.close(master)
        os.close(slave)
    assert counts == {"bad_encoding": 1}


def test_serial_over_socket_url(provisioned):
    """Also the console hook (every line that is not a frame, as the demo reads the node's
    console) and write() (bytes typed on the line, e.g. the demo's soft reset)."""
    db, key = provisioned
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    typed = bytearray()

    def serve():
        conn, _ = server.accept()
        with conn:
            typed.extend(conn.recv(16))  # what the host typed, before the node talks
            data = _serial_lines(key, range(25))
            for i in range(0, len(data), 37):  # arrives in pieces, lines split anywhere
                conn.sendall(data[i:i + 37])
                time.sleep(0.001)
            time.sleep(1.0)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    console: list[bytes] = []
    gw = RunningGateway(GatewayConfig(db=str(db), serial=f"socket://127.0.0.1:{port}",
                                      serial_console=console.append), on_frame=None)
    try:
        gw.serial.write(b"\x04")
        assert wait_for(lambda: len(stored(db)) == 25)
    finally:
        gw.close()
        server.close()
    assert sorted(stored(db)) == list(range(25))
    assert bytes(typed) == b"\x04"
    assert console == [b"MicroPython v1.29 on a node", b">>> some console noise"]


def test_serial_survives_noise_and_overlong_lines(provisioned):
    db, key = provisioned
    master, slave = os.openpty()
    gw = RunningGateway(GatewayConfig(db=str(db), serial=os.ttyname(slave)), on_frame=None)
    try:
        os.write(master, b"\x00\xff" * 3000)  # binary junk with no newline at all
        os.write(master, b"\nTSF1 " + b"QUFB" * 1500 + b"\n")  # a frame line far too long
        os.write(master, b"TSF1 " + base64.b64encode(frame(key, 1)) + b"\n")
        os.write(master, b"TSF1 " + base64.b64encode(b"\x01" * 30) + b"\n")  # not a frame
        assert wait_for(lambda: len(stored(db)) == 1)
        assert wait_for(lambda: sum(gw.gateway.rejections.values()) == 2)
    finally:
        counts = gw.close()
        os.close(master)
        os.close(slave)
    assert counts == {"bad_encoding": 1, "unknown_device": 1}
