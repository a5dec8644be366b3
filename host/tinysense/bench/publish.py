"""`tinysense bench-gateway --publish URL`: what the MQTT publisher costs ingest, and how fast
it drains into a real broker. Numbers, never a test.

  1. max-rate ingest through Gateway.handle_batch (decode on ingest, the default) into a
     fresh SQLite file, without a publisher;
  2. the same with the publisher running (its thread woken by every commit, reading from the
     store, publishing QoS 1 to the broker at `url`) on the same process;
  3. how long after the last commit the publisher had every record acknowledged by the
     broker, and its rate in messages (one per record) per second.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import TextIO

from tinysense.bench.gateway import SAMPLE_RECORDS, _fresh_db
from tinysense.gateway.core import Gateway
from tinysense.gateway.ingest import DEFAULT_BATCH
from tinysense.gateway.publish import Publisher
from tinysense.gateway.registry import new_key
from tinysense.gateway.store import Store
from tinysense.uplink import PTYPE_RECORDS, encode_records, seal


def _ingest(conn, items, batch: int, on_commit=None) -> float:
    gw = Gateway(Store(conn), on_commit=on_commit)
    start = time.perf_counter()
    for i in range(0, len(items), batch):
        gw.handle_batch(items[i:i + batch])
    return len(items) / (time.perf_counter() - start)


def run_publish_bench(url: str, frames: int = 20_000, devices: int = 100,
                      batch: int = DEFAULT_BATCH, synchronous: str = "FULL",
                      progress: TextIO | None = None) -> dict:
    def say(msg: str) -> None:
        if progress is not None:
            print(f"bench-gateway: {msg}", file=progress, flush=True)

    keys = {dev: new_key() for dev in range(1, devices + 1)}
    plaintext = encode_records(SAMPLE_RECORDS, boot=1)
    say(f"sealing {frames} frames for {devices} devices")
    items = [(seal(keys[1 + i % devices], 1 + i % devices, i // devices, PTYPE_RECORDS,
                   plaintext), "bench") for i in range(frames)]
    gc.collect()
    gc.freeze()
    out = {"frames": frames, "devices": devices, "records_per_frame": len(SAMPLE_RECORDS)}
    with tempfile.TemporaryDirectory(prefix="tinysense-bench-publish-") as tmp:
        say("ingest without a publisher")
        conn = _fresh_db(Path(tmp), "plain.db", synchronous, keys)
        out["ingest_fps_without"] = _ingest(conn, items, batch)
        conn.close()
        say(f"ingest with the publisher on {url}")
        conn = _fresh_db(Path(tmp), "published.db", synchronous, keys)
        pub = Publisher(Path(tmp) / "published.db", url, start_at="start")
        pub.start()
        try:
            deadline = time.monotonic() + 10
            while not pub.connected:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bench: the broker at {url} did not accept the publisher")
                time.sleep(0.05)
            t0 = time.perf_counter()
            out["ingest_fps_with"] = _ingest(conn, items, batch, on_commit=pub.notify)
            t_commit = time.perf_counter()
            while pub.frames < frames:
                if time.perf_counter() - t_commit > 600:
                    raise RuntimeError(f"bench: publisher stuck at {pub.frames} of {frames}")
                time.sleep(0.01)
            t_done = time.perf_counter()
        finally:
            pub.close()
            conn.close()
    out["published_messages"] = pub.published
    out["publish_seconds"] = t_done - t0
    out["publish_mps"] = pub.published / (t_done - t0)
    out["lag_after_last_commit_s"] = t_done - t_commit
    return out


def print_publish_bench(r: dict, out: TextIO) -> None:
    print(f"publish bench: {r['frames']} frames x {r['records_per_frame']} records, "
          f"{r['devices']} devices, decode on ingest", file=out)
    print(f"  ingest without a publisher: {r['ingest_fps_without']:,.0f} frames/s", file=out)
    print(f"  ingest with the publisher:  {r['ingest_fps_with']:,.0f} frames/s "
          f"(publisher in the same process)", file=out)
    print(f"  published {r['published_messages']:,} messages (QoS 1, all acknowledged) in "
          f"{r['publish_seconds']:.2f} s: {r['publish_mps']:,.0f} messages/s; caught up "
          f"{r['lag_after_last_commit_s']:.2f} s after the last commit", file=out)
