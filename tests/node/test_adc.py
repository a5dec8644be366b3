"""ADC source (tsnode.sensors.adc) on the MicroPython unix port with fake ADC channels."""

from __future__ import annotations

import json

import pytest
from conftest import run_micropython

pytestmark = pytest.mark.node

SCRIPT = """
import json, gc
from array import array
from tsnode.sensors.adc import AdcSource

class FakeAdc:
    # machine.ADC's read_u16 contract: 0..65535, here from a fixed sequence
    def __init__(self, values):
        self.values = values
        self.i = 0
    def read_u16(self):
        v = self.values[self.i % len(self.values)]
        self.i += 1
        return v

a = FakeAdc([0, 65535, 32768, 32767, 40000, 40004])
b = FakeAdc([65535])
res = {}
src = AdcSource([a, b], rate_hz=100)
buf = array('h', [0, 0])
res["plain"] = [list(buf) for _ in range(3) if src.read(buf)]
src = AdcSource([FakeAdc([0, 65535, 4096, 4112])], rate_hz=100, center=0, shift=4,
                oversample_log2=1)
buf1 = array('h', [0])
res["os_shift"] = [buf1[0] for _ in range(2) if src.read(buf1)]
res["n"] = [src.n_channels, src.rate_hz]
src = AdcSource([a, b], rate_hz=100)
gc.collect()
before = gc.mem_alloc()
for _ in range(100):
    src.read(buf)
res["alloc"] = gc.mem_alloc() - before
print(json.dumps(res))
"""


def test_adc_source_frames_oversampling_and_no_allocation():
    r = json.loads(run_micropython(SCRIPT, heap="112K").strip().splitlines()[-1])
    # v - 32768: a reads 0, 65535, 32768 -> -32768, 32767, 0; b stays at 32767
    assert r["plain"] == [[-32768, 32767], [32767, 32767], [0, 32767]]
    # mean of two reads, then >> 4: (0+65535)//2 >> 4 = 2047; (4096+4112)//2 >> 4 = 256
    assert r["os_shift"] == [2047, 256]
    assert r["n"] == [1, 100]
    assert r["alloc"] == 0
