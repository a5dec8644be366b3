"""Helpers for the uplink node tests: run a driver script from uplink_mp/ on the unix port."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import REPO, micropython_exe

MP_DIR = Path(__file__).resolve().parent / "uplink_mp"
VECTORS = REPO / "tests" / "vectors" / "uplink"


def mp_env() -> dict:
    from conftest import micropython_env

    return micropython_env([str(REPO / "firmware"), str(MP_DIR)])


def run_mp(script: str, *args: str, cwd: Path | None = None, heap: str = "512K",
           timeout: float = 120) -> str:
    """Run uplink_mp/<script> with argv; return stdout, or fail with its output."""
    cmd = [micropython_exe(), "-X", f"heapsize={heap}", str(MP_DIR / script), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=mp_env(), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc.stdout


def expected_records(i: int) -> list[dict]:
    """The records send_node.py puts in frame number i."""
    return [{"type": "event", "code": 1, "t_ms": 1000 + i, "value": i},
            {"type": "reading", "sensor": 2, "t_ms": 1000 + i, "dtype": "i16",
             "values": [i, -i, 3]},
            {"type": "inference", "model": 1, "t_ms": 1001 + i, "class": i % 4,
             "confidence": 200}]


def provision_flash(flash: Path, key: bytes) -> None:
    """Write the key and create the node's counter store (as provisioning does)."""
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "uplink_key.bin").write_bytes(key)
    from conftest import run_micropython
    run_micropython(f"from tsnode.uplink.counter import CounterStore\n"
                    f"k = open('{flash}/uplink_key.bin', 'rb').read()\n"
                    f"CounterStore('{flash}').create(k)\n")


class Collector:
    """What a test gateway saw: frames by counter (bytes must never differ), batches."""

    def __init__(self, key: bytes, device_id: int):
        self.key = key
        self.device_id = device_id
        self.frames: dict[int, bytes] = {}
        self.batches: dict[int, object] = {}
        self.datagrams = 0
        self.errors: list[str] = []
        self.ack_counter = 0

    def take(self, data: bytes) -> bytes | None:
        """Record one uplink frame; return the ack frame to send back (or None)."""
        from tinysense.uplink import (
            PTYPE_ACK, FrameError, PayloadError, decode_batch, encode_ack, open_frame, seal,
        )
        self.datagrams += 1
        try:
            header, plaintext = open_frame(self.key, data)
            batch = decode_batch(plaintext)
        except (FrameError, PayloadError) as exc:
            self.errors.append(str(exc))
            return None
        if header.device_id != self.device_id:
            self.errors.append(f"device {header.device_id:#x}")
            return None
        old = self.frames.setdefault(header.counter, bytes(data))
        if old != bytes(data):
            self.errors.append(f"counter {header.counter} reused for a different frame")
        self.batches[header.counter] = batch
        ack = seal(self.key, self.device_id, self.ack_counter, PTYPE_ACK,
                   encode_ack([header.counter]), direction=1)
        self.ack_counter += 1
        return ack
