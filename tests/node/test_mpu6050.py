"""MPU6050 driver on the MicroPython unix port, against a fake I2C bus with its register map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, run_micropython

pytestmark = pytest.mark.node
PATH = [str(REPO / "firmware"), str(Path(__file__).resolve().parent)]

SETUP = """
import json, gc
from array import array
from fake_mpu6050 import FakeMPU6050Bus
from tsnode.sensors.mpu6050 import MPU6050, MPU6050Error
slept = []
def nap(ms):
    slept.append(ms)
"""


def _mp(body: str) -> dict:
    out = run_micropython(SETUP + body, path=PATH, heap="112K")
    return json.loads(out.strip().splitlines()[-1])


def test_init_programs_the_register_map():
    r = _mp("""
bus = FakeMPU6050Bus()
imu = MPU6050(bus, sleep_ms=nap)
print(json.dumps({"regs": {hex(k): bus.reg(k) for k in (0x19, 0x1A, 0x1B, 0x1C, 0x38, 0x6B,
                                                        0x6C)},
                  "resets": bus.resets, "first": bus.writes[0], "slept": slept,
                  "rate": imu.rate_hz, "who": imu.who_am_i}))
""")
    assert r["first"] == [0x6B, 0x80], "the driver must reset the chip first"
    assert r["resets"] == 1 and r["slept"][0] >= 100  # datasheet: 100 ms after reset
    assert r["regs"] == {
        "0x19": 99,    # SMPLRT_DIV: 1 kHz / (1 + 99) = 10 Hz
        "0x1a": 5,     # CONFIG: DLPF_CFG 5 (10 Hz)
        "0x1b": 0x18,  # GYRO_CONFIG: FS_SEL 3, +-2000 deg/s
        "0x1c": 0x10,  # ACCEL_CONFIG: AFS_SEL 2, +-8 g
        "0x38": 0x01,  # INT_ENABLE: DATA_RDY_EN
        "0x6b": 0x01,  # PWR_MGMT_1: awake, PLL with X gyro reference
        "0x6c": 0x00,  # PWR_MGMT_2: all axes on
    }
    assert r["rate"] == 10 and r["who"] == 0x68


def test_ranges_and_rates_are_configurable():
    r = _mp("""
bus = FakeMPU6050Bus(address=0x69)
imu = MPU6050(bus, address=0x69, accel_range=2, gyro_range=250, rate_hz=200, dlpf=1,
              sleep_ms=nap)
print(json.dumps([bus.reg(0x1C), bus.reg(0x1B), bus.reg(0x19), bus.reg(0x1A),
                  imu.accel_lsb_per_g, imu.gyro_lsb_per_dps]))
""")
    assert r == [0x00, 0x00, 4, 1, 16384, 131.0]


def test_burst_read_signed_counts_and_no_allocation():
    r = _mp("""
bus = FakeMPU6050Bus()
imu = MPU6050(bus, sleep_ms=nap)
buf = array('h', [0] * 6)
got = []
for s in ((1, -1, 4096, 0, 16, -16, 32767), (-32768, 32767, -4096, -521, 0, 1, -32768)):
    bus.convert(*s)
    ready = imu.data_ready()
    imu.read(buf)
    burst = [bus.last_read_reg, bus.last_read_len]
    got.append([ready, imu.data_ready(), list(buf)] + burst)
acc, gyr = imu.scaled(buf)
t = imu.temperature_c()
gc.collect()
before = gc.mem_alloc()
for _ in range(200):
    imu.read(buf)
after = gc.mem_alloc()
print(json.dumps({"got": got, "acc": acc, "gyr": gyr, "temp": t, "alloc": after - before}))
""")
    assert r["got"][0] == [True, False, [1, -1, 4096, 16, -16, 32767], 0x3B, 14]
    assert r["got"][1] == [True, False, [-32768, 32767, -4096, 0, 1, -32768], 0x3B, 14]
    assert r["acc"] == [-8.0, pytest.approx(32767 / 4096), -1.0]
    assert r["gyr"] == [0.0, pytest.approx(1 / 16.4), pytest.approx(-32768 / 16.4)]
    assert r["temp"] == pytest.approx(-521 / 340 + 36.53)
    assert r["alloc"] == 0, "read() must not allocate"


def test_sleep_and_wake():
    r = _mp("""
bus = FakeMPU6050Bus()
imu = MPU6050(bus, sleep_ms=nap)
buf = array('h', [0] * 6)
bus.convert(1, 2, 3, 0, 4, 5, 6)
imu.sleep()
asleep = bus.reg(0x6B)
landed = bus.convert(9, 9, 9, 0, 9, 9, 9)
imu.read(buf)
frozen = list(buf)
imu.wake()
bus.convert(7, 8, 9, 0, 10, 11, 12)
imu.read(buf)
print(json.dumps([asleep, landed, frozen, bus.reg(0x6B), list(buf), bus.reg(0x1B)]))
""")
    assert r == [0x41, False, [1, 2, 3, 4, 5, 6], 0x01, [7, 8, 9, 10, 11, 12], 0x18]


@pytest.mark.parametrize("setup, message", [
    ("bus = FakeMPU6050Bus(address=0x69)", "no IMU answers at I2C address 0x68"),
    ("bus = FakeMPU6050Bus(who_am_i=0x12)", "WHO_AM_I=0x12, not an MPU6050"),
])
def test_clear_errors(setup, message):
    r = _mp(setup + """
try:
    MPU6050(bus, sleep_ms=nap)
    print(json.dumps("no error"))
except MPU6050Error as e:
    print(json.dumps(str(e)))
""")
    assert message in r


def test_bad_arguments():
    r = _mp("""
bus = FakeMPU6050Bus()
errs = []
for kw in ({"accel_range": 3}, {"gyro_range": 300}, {"rate_hz": 2}, {"dlpf": 0}):
    try:
        MPU6050(bus, sleep_ms=nap, **kw)
        errs.append(None)
    except ValueError as e:
        errs.append(str(e))
print(json.dumps(errs))
""")
    assert all(r) and "accel_range" in r[0] and "gyro_range" in r[1]


def test_open_source_from_board_config_entries():
    r = _mp(f"""
from tsnode.sensors import open_source, SensorError
class Board:
    def __init__(self, bus):
        self.bus = bus
    def i2c(self):
        return self.bus
    def adc(self, pin):
        return None
imu = open_source({{"kind": "mpu6050", "bus": "i2c", "address": 0x68}},
                  Board(FakeMPU6050Bus()), rate_hz=10)
replay = open_source({{"kind": "replay"}}, None,
                     replay_path={str(REPO / 'tests/vectors/recording/v1.tsrc')!r}, speed=0)
errs = []
for spec, board in (({{"kind": "mpu6050"}}, Board(None)), ({{"kind": "adc", "pins": [34]}},
                    Board(None)), ({{"kind": "replay"}}, None), ({{"kind": "lidar"}}, None)):
    try:
        open_source(spec, board)
        errs.append(None)
    except SensorError as e:
        errs.append(str(e))
print(json.dumps([type(imu).__name__, imu.rate_hz, type(replay).__name__, replay.n_channels,
                  errs]))
""")
    assert r[:4] == ["MPU6050", 10, "ReplaySource", 3]
    assert "no I2C bus" in r[4][0] and "no ADC pins" in r[4][1]
    assert "recording file" in r[4][2] and "unknown sensor kind 'lidar'" in r[4][3]
