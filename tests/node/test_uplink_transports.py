"""Uplink end to end on the unix port: UDP to a test gateway on loopback, MQTT through a
real mosquitto, serial lines; queue-full policy (drop oldest, counted and reported)."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading

import pytest
from uplink_helpers import Collector, expected_records, provision_flash, run_mp

from tinysense.uplink import open_frame

pytestmark = pytest.mark.node
DEVICE = 0x0BADCAFE


class UdpGateway:
    def __init__(self, collector: Collector, ack: bool = True, never_ack=()):
        self.c = collector
        self.ack = ack
        self.never_ack = set(never_ack)  # counters this gateway rejects (e.g. too old)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(2048)
            except OSError:
                continue
            if int.from_bytes(data[6:10], "big") in self.never_ack:
                self.c.datagrams += 1
                continue
            reply = self.c.take(data)
            if reply and self.ack:
                self.sock.sendto(reply, addr)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def _stats(out: str) -> dict:
    line = [x for x in out.splitlines() if x.startswith("STATS ")][-1]
    return json.loads(line[6:])


def _check_frames(c: Collector, indices: range):
    assert not c.errors, c.errors[:5]
    by_value = {b.records[0]["value"]: b for b in c.batches.values()}
    assert sorted(by_value) == list(indices)
    for i in indices:
        assert by_value[i].records == expected_records(i)


def test_unackable_frames_do_not_stall_the_queue(tmp_path):
    """The gateway never acks counters 0 and 1 (say it rejects them as too old): with a
    window of 2 they would block every later frame; parked, they stay queued and the rest
    flows."""
    key = os.urandom(16)
    provision_flash(tmp_path, key)
    c = Collector(key, DEVICE)
    gw = UdpGateway(c, never_ack={0, 1})
    try:
        out = run_mp("send_node.py", str(tmp_path), "udp", f"127.0.0.1:{gw.port}", "0", "8",
                     "64", "3000", "2", "40", "60000")
    finally:
        gw.close()
    stats = _stats(out)
    assert stats["acked"] == 6 and stats["queued"] == 2, stats
    assert sorted(c.frames) == list(range(2, 8))
    assert sorted(p.name for p in (tmp_path / "uplink_q").iterdir()) == [
        "00000000", "00000001"]


@pytest.mark.parametrize("mount", [False, True], ids=["dir", "mounted_at_root"])
def test_udp_end_to_end(tmp_path, mount):
    """mounted_at_root: the flash dir is "/" as on the virtual board (VfsPosix quirks)."""
    key = os.urandom(16)
    provision_flash(tmp_path, key)
    c = Collector(key, DEVICE)
    gw = UdpGateway(c)
    root = f"vfs:{tmp_path}" if mount else str(tmp_path)
    try:
        out = run_mp("send_node.py", root, "udp", f"127.0.0.1:{gw.port}", "0", "40", "64")
    finally:
        gw.close()
    stats = _stats(out)
    assert stats["queued"] == 0 and stats["acked"] == 40 and stats["bad_acks"] == 0
    assert sorted(c.frames) == list(range(40))
    _check_frames(c, range(40))


def test_queue_full_drops_oldest_counts_and_reports(tmp_path):
    key = os.urandom(16)
    provision_flash(tmp_path, key)
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nobody listens: datagrams are refused, frames stay queued
    out = run_mp("send_node.py", str(tmp_path), "udp", f"127.0.0.1:{dead_port}", "0", "8",
                 "5", "100")
    stats = _stats(out)
    assert stats["queued"] == 5 and stats["dropped_total"] == 3
    assert sorted(p.name for p in (tmp_path / "uplink_q").iterdir()) == [
        "00000003", "00000004", "00000005", "00000006", "00000007", "dropped"]
    c = Collector(key, DEVICE)
    gw = UdpGateway(c)
    try:  # next boot, gateway reachable: two more frames, the queue drains
        out = run_mp("send_node.py", str(tmp_path), "udp", f"127.0.0.1:{gw.port}", "8", "2",
                     "5")
    finally:
        gw.close()
    stats = _stats(out)
    assert stats["queued"] == 0 and stats["dropped_total"] == 4 and stats["boot"] == 2
    # frame 3 was dropped when frame 8 arrived in the full queue; counters 64, 65 are the
    # second boot's (the first reserved 0..63)
    assert sorted(c.frames) == [4, 5, 6, 7, 64, 65]
    _check_frames(c, range(4, 10))
    reported = {ctr: b.dropped_total for ctr, b in c.batches.items()}
    assert reported == {4: 0, 5: 0, 6: 1, 7: 2, 64: 3, 65: 4}
    assert {b.boot for ctr, b in c.batches.items() if ctr >= 64} == {2}


class MqttGateway:
    """A test gateway on the broker: takes tinysense/+/up, acks on tinysense/<id>/ack."""

    def __init__(self, collector: Collector, host: str, port: int):
        import paho.mqtt.client as mqtt

        self.c = collector
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-gateway")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe("tinysense/+/up", qos=1)
        self.client.loop_start()
        assert subscribed.wait(5), "test gateway could not subscribe"

    def _on_message(self, client, _userdata, msg):
        with self.lock:
            reply = self.c.take(msg.payload)
        if reply:
            client.publish(f"tinysense/{DEVICE:08x}/ack", reply, qos=1)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.mosquitto
def test_mqtt_end_to_end_through_mosquitto(tmp_path, mosquitto):
    host, port = mosquitto
    key = os.urandom(16)
    provision_flash(tmp_path, key)
    c = Collector(key, DEVICE)
    gw = MqttGateway(c, host, port)
    try:
        out = run_mp("send_node.py", str(tmp_path), "mqtt", f"{host}:{port}", "0", "30", "64")
    finally:
        gw.close()
    stats = _stats(out)
    assert stats["queued"] == 0 and stats["acked"] == 30 and stats["bad_acks"] == 0
    assert sorted(c.frames) == list(range(30))
    _check_frames(c, range(30))


@pytest.mark.mosquitto
def test_mqtt_broker_down_then_up(tmp_path, mosquitto):
    """No broker: frames wait on flash and sends do not stall (reconnect back-off); next
    boot with the broker: everything arrives."""
    import time

    host, port = mosquitto
    key = os.urandom(16)
    provision_flash(tmp_path, key)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    t0 = time.monotonic()
    out = run_mp("send_node.py", str(tmp_path), "mqtt", f"127.0.0.1:{dead_port}", "0", "5",
                 "64", "200")
    assert time.monotonic() - t0 < 5
    assert _stats(out)["queued"] == 5
    c = Collector(key, DEVICE)
    gw = MqttGateway(c, host, port)
    try:
        out = run_mp("send_node.py", str(tmp_path), "mqtt", f"{host}:{port}", "5", "2", "64")
    finally:
        gw.close()
    assert _stats(out)["queued"] == 0
    _check_frames(c, range(7))


def test_serial_lines(tmp_path):
    key = os.urandom(16)
    provision_flash(tmp_path, key)
    out = run_mp("send_node.py", str(tmp_path), "serial", "-", "0", "12", "64")
    frames = [base64.b64decode(line[5:], validate=True) for line in out.splitlines()
              if line.startswith("TSF1 ")]
    assert len(frames) == 12
    c = Collector(key, DEVICE)
    for f in frames:
        assert open_frame(key, f)[0].counter == len(c.frames)
        c.take(f)
    _check_frames(c, range(12))
    assert _stats(out)["queued"] == 0


@pytest.mark.mosquitto
def test_mqtt_client_ping_keepalive_qos1_refusal(mosquitto):
    host, port = mosquitto
    out = run_mp("mqtt_client_check.py", host, str(port), timeout=30).split()
    assert out == ["pong", "1", "puback", "True", "echo", "True", "alive", "True",
                   "refused", "True"]


def test_serial_with_acks_on_stdin(tmp_path):
    """serial_acks: the node keeps frames until "TSA1 <base64 ack>" lines arrive on stdin;
    the first two frames' first acks are lost, so the node must send them again."""
    import subprocess
    import time

    from uplink_helpers import MP_DIR, mp_env

    from conftest import micropython_exe

    key = os.urandom(16)
    provision_flash(tmp_path, key)
    proc = subprocess.Popen(
        [micropython_exe(), "-X", "heapsize=512K", str(MP_DIR / "send_node.py"), str(tmp_path),
         "serial+ack", "-", "0", "6", "64", "8000"],
        env=mp_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1)
    c = Collector(key, DEVICE)
    sent_per_counter: dict[int, int] = {}
    deadline = time.monotonic() + 30
    stats = None
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("STATS "):
                stats = json.loads(line[6:])
                break
            if not line.startswith("TSF1 "):
                continue
            frame = base64.b64decode(line[5:].strip(), validate=True)
            ack = c.take(frame)
            ctr = open_frame(key, frame)[0].counter
            sent_per_counter[ctr] = sent_per_counter.get(ctr, 0) + 1
            if ctr < 2 and sent_per_counter[ctr] == 1:
                continue  # ack lost: the node must send these again
            proc.stdin.write("TSA1 " + base64.b64encode(ack).decode() + "\n")
            proc.stdin.flush()
    finally:
        proc.kill()
        proc.wait()
    assert stats is not None, proc.stderr.read()[-2000:]
    assert stats["queued"] == 0 and stats["acked"] == 6 and stats["bad_acks"] == 0
    assert sent_per_counter[0] >= 2 and sent_per_counter[1] >= 2
    _check_frames(c, range(6))
