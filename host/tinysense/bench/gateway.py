"""`tinysense bench-gateway`: sustained ingest rate and latency to ack, measured, not assumed.

What is measured (every frame is a real AES-CCM frame sealed beforehand by the host codec,
spread over many devices, each with its own key):
  1. max-rate ingest through Gateway.handle_batch: parse, key lookup, verify + decrypt,
     replay check, (decode to JSON), INSERT, COMMIT with the chosen synchronous mode, then
     seal the acks. Reported for decode-on-ingest (the default) and decode-on-read.
  2. offered load through the real IngestLoop (the thread the transports feed): a producer
     submits frames at 80% of the rate measured in 1 (or --rate); latency = submit -> ack
     ready to send (after the commit).
  3. the same load over real UDP on loopback, sent by another process, into a running
     gateway (UDP thread + ingest thread): frames stored and the rate reached;
  4. the node's cost to seal one frame, on the virtual board, when the uplink code offers a
     way to measure it (tinysense.bench.uplink.seal_cost).
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tinysense.gateway.core import Gateway
from tinysense.gateway.registry import Registry, new_key
from tinysense.gateway.ingest import DEFAULT_BATCH, IngestLoop
from tinysense.gateway.store import Store, open_db
from tinysense.uplink import PTYPE_RECORDS, encode_records, seal

# A typical frame: 3-axis accelerometer reading, a temperature, an inference result.
SAMPLE_RECORDS = [
    {"type": "reading", "sensor": 1, "t_ms": 1000, "values": [12, -980, 35]},
    {"type": "reading", "sensor": 2, "t_ms": 1000, "values": [2215]},
    {"type": "inference", "model": 1, "t_ms": 1012, "class": 2, "confidence": 231},
]


@dataclass
class BenchResult:
    frames: int
    devices: int
    batch: int
    synchronous: str
    payload_bytes: int
    frame_bytes: int
    host_seal_us: float
    ingest: dict = field(default_factory=dict)     # mode -> {fps, batch_p50_ms, batch_p99_ms}
    sustained: dict = field(default_factory=dict)  # mode -> {offered, achieved, p50/p99_ms}
    udp: dict = field(default_factory=dict)        # mode -> {offered, achieved, sent, acked}
    node_seal: dict | None = None
    node_note: str = ""


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fresh_db(directory: Path, name: str, synchronous: str, keys: dict[int, bytes]):
    path = directory / name
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = open_db(path, synchronous=synchronous)
    reg = Registry(conn)
    conn.execute("BEGIN")
    for dev, key in keys.items():
        reg.set_key(dev, key)
    conn.execute("COMMIT")
    return conn


def _ingest(conn, frames: list[tuple[bytes, str]], batch: int, decode: bool,
            warmup: list[tuple[bytes, str]] = ()) -> dict:
    gw = Gateway(Store(conn), decode=decode)
    for i in range(0, len(warmup), batch):  # first contact per device: key, window, acks
        gw.handle_batch(warmup[i:i + batch])
    durations = []
    start = time.perf_counter()
    cpu_start = time.process_time()
    for i in range(0, len(frames), batch):
        t0 = time.perf_counter()
        gw.handle_batch(frames[i:i + batch])
        durations.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    stored = Store(conn).count_frames() - len(warmup)
    if stored != len(frames) or gw.rejections:
        raise RuntimeError(f"bench ingest stored {stored} of {len(frames)} frames, "
                           f"rejections {dict(gw.rejections)}")
    return {"fps": len(frames) / total, "seconds": total, "cpu_fps": len(frames) / cpu,
            "batch_p50_ms": _percentile(durations, 0.5) * 1e3,
            "batch_p99_ms": _percentile(durations, 0.99) * 1e3}


def _sustained(conn, frames: list[tuple[bytes, str]], rate: float, batch: int,
               keys_by_frame: list[tuple[int, int]], decode: bool) -> dict:
    gw = Gateway(Store(conn), decode=decode)
    loop = IngestLoop(gw, max_batch=batch)
    submitted: dict[tuple[int, int], float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    all_acked = threading.Event()

    def reply(ack) -> None:
        now = time.perf_counter()
        with lock:
            for c in ack.counters:
                t = submitted.pop((ack.device_id, c), None)
                if t is not None:
                    latencies.append(now - t)
            if len(latencies) == len(frames):
                all_acked.set()

    loop.start()
    t_start = time.perf_counter()
    step = 0.002  # submit in 2 ms slices
    per_step = max(1, int(rate * step))
    i = 0
    while i < len(frames):
        due = t_start + (i / rate)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = time.perf_counter()
        end = min(i + per_step, len(frames))
        with lock:
            for j in range(i, end):
                submitted[keys_by_frame[j]] = now
        loop.submit_many([(frames[j][0], frames[j][1], reply, None) for j in range(i, end)])
        i = end
    all_acked.wait(60)
    t_end = time.perf_counter()
    loop.stop()
    return {"offered": rate, "achieved": len(latencies) / (t_end - t_start),
            "acked": len(latencies), "frames": len(frames),
            "p50_ms": _percentile(latencies, 0.5) * 1e3,
            "p99_ms": _percentile(latencies, 0.99) * 1e3}


def _udp_sender(port: int, frames: list[bytes], rate: float, out) -> None:
    """Child process: send `frames` to the gateway at `rate`, count acknowledged counters."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(0.05)
    acked = 0
    last_ack = 0.0
    done = threading.Event()

    def receive() -> None:
        nonlocal acked, last_ack
        quiet_since = None
        while True:
            try:
                sock.recv(2048)
            except TimeoutError:
                if done.is_set():
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > 1.0:
                        return
                continue
            quiet_since = None
            acked += 1
            last_ack = time.monotonic()

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    start = time.monotonic()
    step = max(1, int(rate * 0.002))
    for i in range(0, len(frames), step):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for f in frames[i:i + step]:
            sock.sendto(f, ("127.0.0.1", port))
    done.set()
    reader.join(30)
    out.put({"sent": len(frames), "ack_datagrams": acked, "seconds": last_ack - start})


def _udp_run(db_path: Path, frames: list[bytes], rate: float, batch: int, decode: bool,
             synchronous: str) -> dict:
    """Frames over real UDP on loopback from another process into a running gateway."""
    import multiprocessing

    from tinysense.gateway.run import GatewayConfig, RunningGateway

    gw = RunningGateway(GatewayConfig(db=str(db_path), udp="127.0.0.1:0", max_batch=batch,
                                      decode=decode, synchronous=synchronous), on_frame=None)
    try:
        port = int(gw.addresses["udp"].rsplit(":", 1)[1])
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        proc = ctx.Process(target=_udp_sender, args=(port, frames, rate, out))
        proc.start()
        report = out.get(timeout=120)
        proc.join(10)
    finally:
        gw.close()
    conn = open_db(db_path)
    stored = Store(conn).count_frames()
    conn.close()
    return {"offered": rate, "sent": report["sent"], "stored": stored,
            "achieved": stored / report["seconds"] if report["seconds"] > 0 else 0.0}


def _node_seal_cost() -> tuple[dict | None, str]:
    from tinysense.bench import uplink as node_bench

    try:
        return node_bench.seal_cost(), ""
    except Exception as exc:  # noqa: BLE001 - report it, keep the host numbers
        return None, f"not measured: {exc}"


def run_bench(frames: int = 200_000, devices: int = 100, batch: int = DEFAULT_BATCH,
              synchronous: str = "FULL", db: str | None = None, node: bool = True,
              sustained_rate: float | None = None, progress: TextIO | None = None) -> BenchResult:
    """Run the gateway benchmark; see the module docstring for what each number means."""
    def say(msg: str) -> None:
        if progress is not None:
            print(f"bench-gateway: {msg}", file=progress, flush=True)

    keys = {dev: new_key() for dev in range(1, devices + 1)}
    plaintext = encode_records(SAMPLE_RECORDS, boot=1)
    say(f"sealing {frames} frames for {devices} devices")
    t0 = time.perf_counter()
    items = []
    ids = []
    for i in range(frames):
        dev = 1 + i % devices
        ctr = i // devices
        items.append((seal(keys[dev], dev, ctr, PTYPE_RECORDS, plaintext), f"bench:{dev}"))
        ids.append((dev, ctr))
    host_seal_us = (time.perf_counter() - t0) / frames * 1e6
    # The sealed frames are the bench's input, not gateway state (a running gateway holds
    # none of them): keep the cyclic GC from walking these ~600,000 objects again and again
    # while the gateway is timed. It still collects everything the gateway allocates.
    gc.collect()
    gc.freeze()
    result = BenchResult(frames, devices, batch, synchronous, len(plaintext), len(items[0][0]),
                         host_seal_us)
    tmp = tempfile.TemporaryDirectory(prefix="tinysense-bench-")
    directory = Path(db).parent if db else Path(tmp.name)
    base = Path(db).name if db else "bench.db"
    try:
        for mode, decode in (("decode on ingest", True), ("decode on read", False)):
            say(f"ingest, {mode}, synchronous={synchronous}")
            conn = _fresh_db(directory, base, synchronous, keys)
            result.ingest[mode] = _ingest(conn, items, batch, decode)
            conn.close()
        # Many devices: consecutive frames come from different devices, so every frame
        # needs its own ack (sealed, one datagram). Timed after one warm-up frame each.
        many = max(1, min(10_000, frames // 20))
        mkeys = {dev: new_key() for dev in range(1, many + 1)}
        say(f"sealing frames for {many} devices (one ack per frame)")
        mitems = [(seal(mkeys[1 + i % many], 1 + i % many, i // many, PTYPE_RECORDS,
                        plaintext), f"bench:{i % many}") for i in range(min(frames, 20 * many))]
        gc.freeze()  # bench input too (see above)
        mode = f"decode on read, {many} devices, 1 ack/frame"
        say(f"ingest, {mode}")
        conn = _fresh_db(directory, base, synchronous, mkeys)
        result.ingest[mode] = _ingest(conn, mitems[many:], batch, False, warmup=mitems[:many])
        conn.close()
        del mitems
        for mode, decode in (("decode on ingest", True), ("decode on read", False)):
            rate = sustained_rate or 0.8 * result.ingest[mode]["fps"]
            n = min(frames, int(rate * 2))
            say(f"offered load {rate:.0f} frames/s through the ingest loop, {mode}")
            conn = _fresh_db(directory, base, synchronous, keys)
            result.sustained[mode] = _sustained(conn, items[:n], rate, batch, ids[:n], decode)
            conn.close()
        mode = "decode on ingest, light load"  # a typical deployment: small batches
        say(f"offered load 1000 frames/s through the ingest loop, {mode}")
        conn = _fresh_db(directory, base, synchronous, keys)
        result.sustained[mode] = _sustained(conn, items[:2000], 1000.0, batch, ids[:2000], True)
        conn.close()
        for mode, decode in (("decode on ingest", True), ("decode on read", False)):
            rate = sustained_rate or 0.8 * result.ingest[mode]["fps"]
            n = min(frames, int(rate * 2))
            say(f"offered {rate:.0f} frames/s over UDP from another process, {mode}")
            _fresh_db(directory, base, synchronous, keys).close()
            result.udp[mode] = _udp_run(directory / base, [f for f, _ in items[:n]], rate,
                                        batch, decode, synchronous)
    finally:
        gc.unfreeze()
        if not db:
            tmp.cleanup()
    if node:
        say("node seal cost on the virtual board")
        result.node_seal, result.node_note = _node_seal_cost()
    else:
        result.node_note = "not measured (--no-node)"
    return result


def print_bench(r: BenchResult, out: TextIO) -> None:
    cpus = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"gateway ingest benchmark ({r.frames} frames, {r.devices} devices, "
          f"{r.frame_bytes}-byte frames with {r.payload_bytes}-byte payloads, batch "
          f"{r.batch}, SQLite WAL synchronous={r.synchronous}, {cpus} CPUs, load average "
          f"{load:.1f} at the end)", file=out)
    print(f"  host seal (cryptography AESCCM):  {r.host_seal_us:8.2f} us/frame", file=out)
    for mode, m in r.ingest.items():
        print(f"  ingest, {mode:17s}  {m['fps']:8.0f} frames/s ({m['cpu_fps']:.0f} per CPU "
              f"second)  commit-to-ack per batch: p50 {m['batch_p50_ms']:.1f} ms, p99 "
              f"{m['batch_p99_ms']:.1f} ms", file=out)
    for mode, s in r.sustained.items():
        print(f"  offered {s['offered']:6.0f} frames/s to the ingest loop, {mode}: achieved "
              f"{s['achieved']:.0f} frames/s, {s['acked']}/{s['frames']} acked, latency to "
              f"ack p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms", file=out)
    for mode, u in r.udp.items():
        print(f"  offered {u['offered']:6.0f} frames/s over UDP (loopback, sender process), "
              f"{mode}: stored {u['stored']}/{u['sent']} at {u['achieved']:.0f} frames/s",
              file=out)
    if r.node_seal:
        ns = r.node_seal
        print("  node seal on the virtual board:   " + ", ".join(
            f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in ns.items()),
            file=out)
    else:
        print(f"  node seal on the virtual board:   {r.node_note}", file=out)
    for mode, m in r.ingest.items():
        verdict = "meets" if m["fps"] >= 50_000 else "BELOW"
        print(f"  target 50000 frames/s, {mode}: {verdict}", file=out)
