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


def _dropped_total(flash: Path) -> int:
    path = flash / "uplink_q" / "dropped"
    return int.from_bytes(path.read_bytes()[:4], "big") if path.exists() else 0


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


@pytest.mark.parametrize("queue_max,kills,p_up", [(100000, KILLS, 0.6), (6, 20, 0.3)],
                         ids=["roomy_queue", "full_queue"])
def test_power_cut_never_repeats_a_counter_and_loses_no_queued_frame(tmp_path, queue_max,
                                                                     kills, p_up):
    """full_queue: the queue overflows often; a queued frame may then vanish only as a
    counted drop (dropped_total never decreases and covers every vanished frame)."""
    rng = random.Random(4242 + queue_max)
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
    dropped_at_kill: list[int] = []
    sealed_total = 0
    t0 = time.monotonic()
    try:
        for run in range(kills):
            port = gw.socket_for_run(run, up=rng.random() < p_up)
            proc = subprocess.Popen(
                [micropython_exe(), "-X", "heapsize=256K", str(MP_DIR / "powercut_node.py"),
                 str(flash), str(port), "run", str(queue_max)],
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
            dropped_at_kill.append(_dropped_total(flash))
        drain_port = gw.socket_for_run(kills, up=True)
        gw.rng = random.Random(0)
        out = subprocess.run(
            [micropython_exe(), "-X", "heapsize=256K", str(MP_DIR / "powercut_node.py"),
             str(flash), str(drain_port), "drain", str(queue_max)],
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
    lost = {c for run, snap in snapshots for c in snap if received_after.get(c, -1) <= run}
    assert dropped_at_kill == sorted(dropped_at_kill), "dropped_total went down"
    if queue_max >= 100000:
        assert not lost, f"queued at a kill but never sent afterwards: {sorted(lost)[:10]}"
        assert dropped_at_kill[-1] == 0
    else:
        # each vanished frame was dropped as the oldest of a full queue, and counted
        assert len(lost) <= _dropped_total(flash), (len(lost), _dropped_total(flash))
        assert _dropped_total(flash) > 0, "the queue never overflowed: test too gentle"
    assert out.stdout.split() == ["DRAINED", "0"]
    queued_ever = set().union(*(s for _, s in snapshots))
    assert sealed_total > 40 and len(queued_ever) > 10, (sealed_total, len(queued_ever))
    print(f"\npower cut ({queue_max}): {kills} kills, {sealed_total} frames sealed, "
          f"{len(used)} counters, {len(queued_ever)} frames queued at some kill, "
          f"{len(lost)} dropped by the queue-full policy ({_dropped_total(flash)} counted), "
          f"{len(gw.received)} datagrams, {elapsed:.1f} s")
