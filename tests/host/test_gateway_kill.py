"""A gateway SIGKILLed mid-stream loses no frame it had acknowledged.

The real `tinysense gateway --udp` runs as a subprocess on a real SQLite file. A sender
streams sealed frames without waiting (many in flight), records every ack it receives,
and re-sends what was not acknowledged, like a node. The gateway is killed with SIGKILL
at random moments several times and restarted on the same database. After each kill every
(device, counter) that had been acknowledged must be in the database; at the end every
frame sent is stored exactly once.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tinysense.gateway import Registry, new_key, open_db
from tinysense.uplink import PTYPE_RECORDS, decode_ack, encode_records, open_frame, seal

DEVICES = (11, 12)
KILLS = 5


class Gateway:
    def __init__(self, db, tmp_path, n, transport=("--udp", "127.0.0.1:0")):
        self.log = open(tmp_path / f"gateway-{n}.err", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tinysense", "gateway", *transport,
             "--db", str(db), "--quiet"],
            stdout=subprocess.PIPE, stderr=self.log, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        deadline = time.monotonic() + 60
        self.port = None
        kind = transport[0][2:]
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            m = re.search(rf"listening on {kind} 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
            if not line and self.proc.poll() is not None:
                break
        assert self.port, f"gateway did not start: see {self.log.name}"
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace"))

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def interrupt(self) -> int:
        # generous: closing commits, acks and joins the transports' threads, which on a
        # loaded machine (the suite must pass beside two busy processes) can take a while
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.log.close()
            raise AssertionError("gateway did not stop within 90 s of SIGINT; its stderr: "
                                 + Path(self.log.name).read_text(errors="replace")[-2000:])
        self._reader.join(5)
        self.log.close()
        return rc


def register_devices(db) -> dict[int, bytes]:
    """A new gateway database with a fresh key for each of DEVICES; returns the keys."""
    conn = open_db(db)
    keys = {dev: new_key() for dev in DEVICES}
    for dev, key in keys.items():
        Registry(conn).set_key(dev, key)
    conn.close()
    return keys


def stored(db) -> set[tuple[int, int]]:
    conn = sqlite3.connect(db)
    try:
        return set(conn.execute("SELECT device_id, counter FROM frames").fetchall())
    finally:
        conn.close()


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_frame(tmp_path):
    rng = random.Random(4)
    db = tmp_path / "gateway.db"
    keys = register_devices(db)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.1)
    acked: set[tuple[int, int]] = set()
    lock = threading.Lock()
    running = threading.Event()
    running.set()

    def receive():
        while running.is_set():
            try:
                data = sock.recv(2048)
            except (TimeoutError, OSError):
                continue
            header, plaintext = open_frame(keys[int.from_bytes(data[2:6], "big")], data)
            with lock:
                acked.update((header.device_id, c) for c in decode_ack(plaintext))

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    frames: dict[tuple[int, int], bytes] = {}
    next_counter = dict.fromkeys(DEVICES, 0)

    def send_burst(port: int, n: int) -> None:
        for _ in range(n):
            dev = rng.choice(DEVICES)
            c = next_counter[dev]
            next_counter[dev] += 1
            pt = encode_records([{"type": "event", "code": 1, "t_ms": c, "value": c}])
            frames[(dev, c)] = f = seal(keys[dev], dev, c, PTYPE_RECORDS, pt)
            sock.sendto(f, ("127.0.0.1", port))

    def resend_unacked(port: int) -> None:
        with lock:
            missing = [k for k in frames if k not in acked]
        for k in missing:
            sock.sendto(frames[k], ("127.0.0.1", port))

    in_flight = 0  # frames sent but not acknowledged when a kill happened
    try:
        for n in range(KILLS):
            gw = Gateway(db, tmp_path, n)
            resend_unacked(gw.port)
            with lock:
                acked_at_start = len(acked)
            stop_at = time.monotonic() + rng.uniform(0.3, 1.0)
            deadline = time.monotonic() + 30  # a slow machine: wait for this run's acks
            while time.monotonic() < deadline:
                send_burst(gw.port, 50)
                with lock:
                    progressed = len(acked) > acked_at_start
                if progressed and time.monotonic() >= stop_at:
                    break  # kill right after a burst, while its frames are in flight
                time.sleep(0.002)
            with lock:
                unacked_at_kill = len(frames) - len(acked)
            gw.kill()
            with lock:  # acks sent before the kill may still arrive: they count too
                acked_before_kill = set(acked)
            in_db = stored(db)
            lost = acked_before_kill - in_db
            assert not lost, f"kill {n}: acknowledged but not stored: {sorted(lost)[:10]}"
            assert len(acked_before_kill) > 0
            in_flight += unacked_at_kill
        # Final run: re-send everything unacknowledged, then stop cleanly.
        gw = Gateway(db, tmp_path, KILLS)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            resend_unacked(gw.port)
            time.sleep(0.3)
            with lock:
                if len(acked) == len(frames):
                    break
        assert gw.interrupt() == 0
    finally:
        running.clear()
        receiver.join(2)
        sock.close()
    assert in_flight > 0, "no kill happened while frames were in flight"
    assert acked == set(frames)
    assert stored(db) == set(frames)  # every frame stored, each once (primary key)
    assert any("rejections:" in line for line in gw.lines)


@pytest.mark.slow
@pytest.mark.mosquitto
def test_sigkill_over_mqtt_redelivers_unacknowledged(tmp_path, mosquitto):
    """Over MQTT the sender never re-sends: the gateway PUBACKs a frame to the broker only
    after its commit (persistent session), so the broker redelivers whatever a killed
    gateway had received but not stored. Every frame must end up stored exactly once."""
    import paho.mqtt.client as mqtt

    host, port = mosquitto
    rng = random.Random(5)
    db = tmp_path / "gateway.db"
    keys = register_devices(db)
    url = f"mqtt://{host}:{port}?client_id=gw-kill-test"
    acked: set[tuple[int, int]] = set()
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(client, userdata, msg):
        dev = int(msg.topic.split("/")[1], 16)
        header, plaintext = open_frame(keys[dev], msg.payload)
        with lock:
            acked.update((dev, c) for c in decode_ack(plaintext))

    node = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                       client_id="kill-test-node", protocol=mqtt.MQTTv311)
    node.on_message = on_message
    node.on_subscribe = lambda *a, **k: subscribed.set()
    node.connect(host, port)
    node.loop_start()
    node.subscribe([(f"tinysense/{dev:08x}/ack", 1) for dev in DEVICES])
    assert subscribed.wait(5)
    sent: list[tuple[int, int]] = []
    next_counter = dict.fromkeys(DEVICES, 0)

    def publish(n: int) -> None:
        for _ in range(n):
            dev = rng.choice(DEVICES)
            c = next_counter[dev]
            next_counter[dev] += 1
            pt = encode_records([{"type": "event", "code": 2, "t_ms": c, "value": c}])
            node.publish(f"tinysense/{dev:08x}/up", seal(keys[dev], dev, c, PTYPE_RECORDS, pt),
                         qos=1).wait_for_publish(5)
            sent.append((dev, c))

    try:
        for n in range(3):
            gw = Gateway(db, tmp_path, f"mqtt-{n}", ("--mqtt", url))
            with lock:
                acked_at_start = len(acked)
            stop_at = time.monotonic() + rng.uniform(0.4, 1.0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                publish(20)
                time.sleep(0.01)
                with lock:
                    progressed = len(acked) > acked_at_start
                if progressed and time.monotonic() >= stop_at:
                    break
            gw.kill()
            with lock:
                acked_before_kill = set(acked)
            assert not acked_before_kill - stored(db), f"kill {n}: an acked frame was lost"
            publish(30)  # while the gateway is down: the broker keeps them for the session
        gw = Gateway(db, tmp_path, "mqtt-final", ("--mqtt", url))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                all_acked = len(acked) >= len(sent)
            if all_acked and len(stored(db)) >= len(sent):
                break
            time.sleep(0.2)
        assert gw.interrupt() == 0
    finally:
        node.loop_stop()
        node.disconnect()
    assert stored(db) == set(sent), f"missing {sorted(set(sent) - stored(db))[:10]}"
    assert acked == set(sent)
