"""`tinysense bench-gateway --fleet`: what the fleet page (gateway --http) costs. Numbers,
never a test.

  1. a database of `frames` frames (readings, heap and queue events) from `devices` devices,
     stored through Gateway.handle_batch;
  2. the page's first read of it (FleetView.refresh until caught up), in frames/s;
  3. one /api/fleet (the table) and one /api/devices/ID (the plots) over real HTTP on
     loopback, when nothing new arrived: mean of `requests` requests each.
"""

from __future__ import annotations

import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tinysense.bench.gateway import _fresh_db
from tinysense.formats.app import RECORD_IDS
from tinysense.gateway.core import Gateway
from tinysense.gateway.fleet import FleetView
from tinysense.gateway.fleet_http import FleetServer
from tinysense.gateway.registry import new_key
from tinysense.gateway.run import open_db_readonly
from tinysense.gateway.store import Store
from tinysense.uplink import PTYPE_RECORDS, encode_records, seal


@dataclass
class FleetBench:
    frames: int
    devices: int
    first_read_s: float
    fleet_ms: float
    device_ms: float


def run_fleet_bench(frames: int = 100_000, devices: int = 100, requests: int = 50,
                    progress: TextIO | None = None) -> FleetBench:
    keys = {dev: new_key() for dev in range(1, devices + 1)}
    with tempfile.TemporaryDirectory(prefix="tinysense-bench-fleet-") as tmp:
        conn = _fresh_db(Path(tmp), "fleet.db", "NORMAL", keys)
        gw = Gateway(Store(conn))
        batch = []
        for i in range(frames):
            dev, c = i % devices + 1, i // devices
            pt = encode_records([
                {"type": "reading", "sensor": 1, "t_ms": c, "values": [c % 100, 3]},
                {"type": "event", "code": RECORD_IDS["EV_MEM_FREE"], "t_ms": c, "value": 4000},
                {"type": "event", "code": RECORD_IDS["EV_QUEUED"], "t_ms": c, "value": 1}],
                boot=1)
            batch.append((seal(keys[dev], dev, c, PTYPE_RECORDS, pt), "bench"))
            if len(batch) == 2000 or i == frames - 1:
                gw.handle_batch(batch)
                batch = []
        conn.close()
        if progress:
            print(f"stored {frames:,} frames", file=progress, flush=True)
        view = FleetView(open_db_readonly(Path(tmp) / "fleet.db"))
        t0 = time.perf_counter()
        view.refresh(force=True)
        while view.catching_up:
            view.refresh(force=True)
        first = time.perf_counter() - t0
        server = FleetServer(view, "127.0.0.1", 0)
        server.start()
        try:
            base = f"http://{server.address}"

            def mean_ms(path: str) -> float:
                t = time.perf_counter()
                for _ in range(requests):
                    urllib.request.urlopen(base + path, timeout=30).read()
                return (time.perf_counter() - t) / requests * 1000

            fleet_ms, device_ms = mean_ms("/api/fleet"), mean_ms("/api/devices/1")
        finally:
            server.close()
            view.conn.close()
    return FleetBench(frames, devices, first, fleet_ms, device_ms)


def print_fleet_bench(r: FleetBench, out: TextIO) -> None:
    print(f"fleet page over {r.frames:,} frames of {r.devices} devices:", file=out)
    print(f"  first read      {r.first_read_s:6.2f} s   ({r.frames / r.first_read_s:,.0f} "
          "frames/s)", file=out)
    print(f"  /api/fleet      {r.fleet_ms:6.2f} ms  (nothing new; the table)", file=out)
    print(f"  /api/devices/1  {r.device_ms:6.2f} ms  (its plots: 120 readings, 60 events)",
          file=out, flush=True)
