"""Power-cut test: SIGKILL a node process (MicroPython unix port) at random points while it
seals, queues and sends frames over UDP, at least 50 times, restarting it in between.

Checks: no (device, counter) is ever used for two different frames (across every frame
the node printed as sealed, every frame the gateway received, every queue snapshot), the
queue on "flash" is never corrupt, and every frame that was queued at a kill is received
by the gateway from a LATER run (each run gets its own gateway socket, so a datagram's
run is known exactly, not guessed from timing).
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from uplink_helpers import MP_DIR, mp_env

from conftest import micropython_exe, run_micropython
from tinysense.uplink import (
    PTYPE_ACK, FrameError, decode_records, encode_ack, open_frame, parse_header, seal,
)

pytestmark = [pytest.mark.node, pytest.mark.slow]
DEVICE = 0x00C0FFEE
KILLS = 55


class MiniGateway:
    """Receives frames on one socket per node run, acks (when up) after recording them."""

    def __init__(self, key: bytes, rng: random.Random):
        self.key = key
        self.rng = rng
        self.sel = selectors.DefaultSelector()
        self.received: list[tuple[int, int, bytes]] = []  # (run, counter, frame)
        self.up: dict[int, bool] = {}
        self.ack_counter = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def socket_for_run(self, run: int, up: bool) -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        with self.lock:
            self.up[run] = up
            self.sel.register(s, selectors.EVENT_READ, run)
        return s.getsockname()[1]

    def _loop(self):
        while not self.stop:
            with self.lock:
                events = self.sel.select(timeout=0) if self.sel.get_map() else []
            if not events:
                time.sleep(0.001)
                continue
            for key, _ in events:
                try:
                    data, addr = key.fileobj.recvfrom(2048)
                except OSError:
                    continue
                self._handle(key.data, data, addr, key.fileobj)

    def _handle(self, run, data, addr, sock):
        try:
            header, plaintext = open_frame(self.key, data)
            decode_records(plaintext)
        except (FrameError, ValueError) as exc:
            self.errors.append(f"run {run}: {exc}")
            return
        self.received.append((run, header.counter, data))
        if self.up[run] and self.rng.random() > 0.1:  # 10% of acks lost
            ack = seal(self.key, DEVICE, self.ack_counter, PTYPE_ACK,
                       encode_ack([header.counter]), direction=1)
            self.ack_counter += 1
            sock.sendto(ack, addr)

    def close(self):
        self.stop = True
        self.thread.join()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def _queue_snapshot(flash: Path, key: bytes) -> dict[int, bytes]:
    snap = {}
    for p in (flash / "uplink_q").iterdir():
        if p.name.endswith(".tmp") or p.name == "dropped":
            continue
        data = p.read_bytes()
        header, _ = open_frame(key, data)  # a corrupt queue file fails the test here
        assert header.counter == int(p.name, 16), p.name
        snap[header.counter] = data
    return snap


def test_power_cut_never_repeats_a_counter_and_loses_no_queued_frame(tmp_path):
    rng = random.Random(4242)
    key = os.urandom(16)
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "uplink_key.bin").write_bytes(key)
    run_micropython(f"from tsnode.uplink.counter import CounterStore\n"
                    f"k = open('{flash}/uplink_key.bin', 'rb').read()\n"
                    f"CounterStore('{flash}').create(k)\n")
    gw = MiniGateway(key, rng)
    used: dict[int, set[bytes]] = {}
    snapshots: list[tuple[int, dict[int, bytes]]] = []
    sealed_total = 0
    t0 = time.monotonic()
    try:
        for run in range(KILLS):
            port = gw.socket_for_run(run, up=rng.random() < 0.6)
            proc = subprocess.Popen(
                [micropython_exe(), "-X", "heapsize=256K", str(MP_DIR / "powercut_node.py"),
                 str(flash), str(port), "run"],
                env=mp_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.03, 0.35))
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate()
            assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
            for line in out.decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0] == "S":
                    try:
                        frame = bytes.fromhex(parts[2])
                        parse_header(frame)
                    except ValueError:
                        continue  # the line the kill cut short
                    used.setdefault(int(parts[1]), set()).add(frame)
                    sealed_total += 1
            snapshots.append((run, _queue_snapshot(flash, key)))
        drain_port = gw.socket_for_run(KILLS, up=True)
        gw.rng = random.Random(0)
        out = subprocess.run(
            [micropython_exe(), "-X", "heapsize=256K", str(MP_DIR / "powercut_node.py"),
             str(flash), str(drain_port), "drain"],
            env=mp_env(), capture_output=True, text=True, timeout=60)
        time.sleep(0.1)
    finally:
        gw.close()
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert not gw.errors, gw.errors[:5]
    for run, counter, frame in gw.received:
        used.setdefault(counter, set()).add(frame)
    for _run, snap in snapshots:
        for counter, frame in snap.items():
            used.setdefault(counter, set()).add(frame)
    reused = {c: len(f) for c, f in used.items() if len(f) > 1}
    assert not reused, f"counters used for different frames: {reused}"
    received_after: dict[int, int] = {}
    for run, counter, _ in gw.received:
        received_after[counter] = max(received_after.get(counter, -1), run)
    lost = [(run, c) for run, snap in snapshots for c in snap
            if received_after.get(c, -1) <= run]
    assert not lost, f"queued at a kill but never sent afterwards: {lost[:10]}"
    assert out.stdout.split() == ["DRAINED", "0"]
    queued_ever = set().union(*(s for _, s in snapshots))
    assert sealed_total > 100 and len(queued_ever) > 20, (sealed_total, len(queued_ever))
    print(f"\npower cut: {KILLS} kills, {sealed_total} frames sealed, {len(used)} counters, "
          f"{len(queued_ever)} frames queued at some kill, {len(gw.received)} datagrams, "
          f"{elapsed:.1f} s")
