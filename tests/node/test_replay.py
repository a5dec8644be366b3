"""Replay source (tsnode.sensors.replay) on the MicroPython unix port: the golden recording
file, pacing in real and accelerated time, looping, malformed files, no allocation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_micropython

from tinysense.formats.recording import Recordings, write_recordings

pytestmark = pytest.mark.node
VEC = REPO / "tests" / "vectors" / "recording"

HEAD = """
import json, gc, time
from array import array
from tsnode.sensors.replay import ReplaySource, ReplayError
"""


def _mp(body: str) -> object:
    out = run_micropython(HEAD + body, heap="112K")
    return json.loads(out.strip().splitlines()[-1])


def _file(tmp_path: Path, n_frames: int, rate: int = 50, n_rec: int = 1) -> Path:
    path = tmp_path / "r.tsrc"
    frames = np.arange(n_frames * 2, dtype=np.int16).reshape(n_frames, 2)
    write_recordings(path, Recordings(rate, ["x"], [(0, frames + 1000 * i)
                                                    for i in range(n_rec)]))
    return path


def test_golden_file_frames_and_boundaries():
    c = json.loads((VEC / "v1.json").read_text())
    r = _mp(f"""
src = ReplaySource({str(VEC / 'v1.tsrc')!r}, speed=0)
buf = array('h', [0] * src.n_channels)
rows = []
while src.read(buf):
    rows.append([src.recording, src.label, src.frame, src.new_recording, list(buf)])
again = src.read(buf)
src.close()
print(json.dumps({{"head": [src.n_channels, src.rate_hz, src.n_recordings, src.labels],
                  "rows": rows, "again": again}}))
""")
    assert r["head"] == [c["n_channels"], c["rate_hz"], len(c["recordings"]), c["labels"]]
    want = [[i, rec["label"], j, j == 0, f] for i, rec in enumerate(c["recordings"])
            for j, f in enumerate(rec["frames"])]
    assert r["rows"] == want  # the empty recording (index 1) yields no frames
    assert r["again"] is False


def test_real_time_and_accelerated_pacing(tmp_path):
    path = _file(tmp_path, 40, rate=50)
    r = _mp(f"""
res = []
for speed in (1, 5):
    src = ReplaySource({str(path)!r}, speed=speed)
    buf = array('h', [0, 0])
    t0 = time.ticks_ms()
    for _ in range(11):
        src.read(buf)
    res.append(time.ticks_diff(time.ticks_ms(), t0))
    src.close()
print(json.dumps(res))
""")
    real, fast = r
    # 10 periods after the first frame: 10 x 20 ms at speed 1, 10 x 4 ms at speed 5
    assert 195 <= real < 400, real
    assert 38 <= fast < 150, fast


def test_loop_and_no_allocation(tmp_path):
    path = _file(tmp_path, 3, n_rec=2)
    r = _mp(f"""
src = ReplaySource({str(path)!r}, speed=0, loop=True)
buf = array('h', [0, 0])
seen = []
for _ in range(8):
    src.read(buf)
    seen.append([src.recording, buf[0]])
alloc = []
for speed in (0, 100):
    src.set_speed(speed)
    src.read(buf)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(30):
        src.read(buf)
    alloc.append(gc.mem_alloc() - before)
print(json.dumps({{"seen": seen, "alloc": alloc}}))
""")
    assert r["seen"] == [[0, 0], [0, 2], [0, 4], [1, 1000], [1, 1002], [1, 1004], [0, 0],
                         [0, 2]]
    assert r["alloc"] == [0, 0], "read() must not allocate"


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"NOPE" + d[4:], "is not a recording file"),
    (lambda d: d[:4] + b"\x07" + d[5:], "version 7, this node reads 1"),
    (lambda d: d[:-3], "ends inside a frame"),
    (lambda d: d[:15], "ends inside its label table"),
    (lambda d: d[:12], "ends inside its label table"),
    (lambda d: d[:30], "ends inside a record header"),
])
def test_malformed_files(tmp_path, mutate, message):
    bad = tmp_path / "bad.tsrc"
    bad.write_bytes(mutate((VEC / "v1.tsrc").read_bytes()))
    r = _mp(f"""
try:
    src = ReplaySource({str(bad)!r}, speed=0)
    buf = array('h', [0] * 3)
    while src.read(buf):
        pass
    print(json.dumps("no error"))
except ReplayError as e:
    print(json.dumps(str(e)))
""")
    assert message in r
