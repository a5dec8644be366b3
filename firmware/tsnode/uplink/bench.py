"""Node-side uplink cost: time sealing frames (and encoding a batch) on this node.

`bench_seal(n, sizes)` returns one dict per payload size with us/frame, frames/s and the
heap bytes allocated per frame (GC disabled while timing, so nothing is hidden by a
collection). The bench key is a fixed public test key, never a device key.
"""

import gc
import time

_BENCH_KEY = b"tinysense-bench!"  # 16 bytes, public


def _time(fn, n):
    for i in range(min(n, 50)):  # warm up: first-seen sizes fill the codec's view cache
        fn(i)
    gc.collect()
    gc.disable()
    try:
        a0 = gc.mem_alloc()
        t0 = time.ticks_us()
        for i in range(n):
            fn(i)
        dt = time.ticks_diff(time.ticks_us(), t0)
        alloc = gc.mem_alloc() - a0
    finally:
        gc.enable()
    return dt, alloc


def bench_seal(n=500, sizes=(16, 64, 256, 1024)):
    from tsnode.uplink.frame import Codec
    from tsnode.uplink.records import Batch

    codec = Codec(_BENCH_KEY, 1)
    out = []
    for size in sizes:
        payload = bytearray(size)
        dt, alloc = _time(lambda i: codec.seal(i, 1, payload), n)
        out.append({"what": "seal", "payload_bytes": size, "frames": n,
                    "us_per_frame": dt / n, "frames_per_s": n * 1e6 / dt if dt else 0,
                    "alloc_bytes_per_frame": alloc / n})
    batch = Batch()
    values = [100, -200, 300]

    def encode_and_seal(i):
        batch.reset(1, 0, i)
        batch.reading(2, i, values, "i16")
        batch.inference(1, i + 1, 3, 200)
        batch.event(5, i + 2, i)
        codec.seal(i, 1, batch.buf, batch.pos)

    dt, alloc = _time(encode_and_seal, n)
    out.append({"what": "encode3+seal", "payload_bytes": batch.pos, "frames": n,
                "us_per_frame": dt / n, "frames_per_s": n * 1e6 / dt if dt else 0,
                "alloc_bytes_per_frame": alloc / n})
    return out
