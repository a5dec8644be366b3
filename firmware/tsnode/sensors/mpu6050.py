"""MPU6050 6-axis IMU driver (InvenSense register map RM-MPU-6000A rev 4.2), over I2C.

The board seam hands in the bus: any object with machine.I2C's `readfrom_mem`,
`readfrom_mem_into` and `writeto_mem` (a real machine.I2C / SoftI2C on a board, a fake
register map in tests). The driver touches no `machine` API itself.

read(buf) is the hot path: one 14-byte burst read (ACCEL_XOUT_H..GYRO_ZOUT_L, so the six
axes come from the same sample) into a preallocated bytearray, then six big-endian int16
into the caller's array('h'). No allocation, no floats. Counts are kept raw: with the
default ranges (+-8 g, +-2000 deg/s) they are the units the activity model was trained
in (4096 counts per g, 16.4 counts per deg/s; see docs/models.md).
"""

import time

from micropython import const

ADDRESS = const(0x68)  # AD0 low; 0x69 with AD0 high

# registers (register map section 3)
_SMPLRT_DIV = const(0x19)
_CONFIG = const(0x1A)
_GYRO_CONFIG = const(0x1B)
_ACCEL_CONFIG = const(0x1C)
_INT_ENABLE = const(0x38)
_INT_STATUS = const(0x3A)
_ACCEL_XOUT_H = const(0x3B)
_TEMP_OUT_H = const(0x41)
_PWR_MGMT_1 = const(0x6B)
_PWR_MGMT_2 = const(0x6C)
_WHO_AM_I = const(0x75)

# PWR_MGMT_1 bits
_DEVICE_RESET = const(0x80)
_SLEEP = const(0x40)
_CLKSEL_PLL_XGYRO = const(0x01)  # recommended over the internal 8 MHz oscillator
_DATA_RDY = const(0x01)
_BURST = const(14)  # accel xyz, temperature, gyro xyz: 7 big-endian int16

# full-scale range -> FS_SEL/AFS_SEL code (bits 4:3) and sensitivity
ACCEL_RANGES = {2: (0, 16384), 4: (1, 8192), 8: (2, 4096), 16: (3, 2048)}  # g: code, LSB/g
GYRO_RANGES = {250: (0, 131.0), 500: (1, 65.5), 1000: (2, 32.8), 2000: (3, 16.4)}  # deg/s
# WHO_AM_I values of parts with this register map: MPU6050, MPU6500, MPU9250, MPU9255
_KNOWN_IDS = (0x68, 0x70, 0x71, 0x73)


class MPU6050Error(Exception):
    pass


class MPU6050:
    """One MPU6050 at `address` on `i2c`.

    rate_hz sets the sample-rate divider (internal sample rate 1 kHz with the low-pass
    filter on: SMPLRT_DIV = 1000 / rate_hz - 1, 4..1000 Hz). dlpf is CONFIG's DLPF_CFG
    (1..6: 188, 98, 42, 20, 10, 5 Hz bandwidth); 5 suits the 10 Hz activity model.
    """

    n_channels = 6

    def __init__(self, i2c, address=ADDRESS, accel_range=8, gyro_range=2000, rate_hz=10,
                 dlpf=5, sleep_ms=time.sleep_ms):
        if accel_range not in ACCEL_RANGES:
            raise ValueError("accel_range must be one of 2, 4, 8, 16 (g)")
        if gyro_range not in GYRO_RANGES:
            raise ValueError("gyro_range must be one of 250, 500, 1000, 2000 (deg/s)")
        if not 4 <= rate_hz <= 1000 or not 1 <= dlpf <= 6:
            raise ValueError("rate_hz must be 4..1000 and dlpf 1..6")
        self.i2c = i2c
        self.address = address
        self.accel_range = accel_range
        self.gyro_range = gyro_range
        self.accel_lsb_per_g = ACCEL_RANGES[accel_range][1]
        self.gyro_lsb_per_dps = GYRO_RANGES[gyro_range][1]
        self.rate_hz = 1000 // (1000 // rate_hz)
        self.dlpf = dlpf
        self._sleep_ms = sleep_ms
        self._burst = bytearray(_BURST)
        self._one = bytearray(1)
        self.init()

    # -- registers -----------------------------------------------------------------------
    def _write(self, reg, value):
        self._one[0] = value
        self.i2c.writeto_mem(self.address, reg, self._one)

    def _read(self, reg):
        self.i2c.readfrom_mem_into(self.address, reg, self._one)
        return self._one[0]

    # -- set-up --------------------------------------------------------------------------
    def init(self):
        """Reset, wake on the gyro PLL clock, set ranges, filter and rate; check WHO_AM_I."""
        try:
            who = self._read(_WHO_AM_I)
        except OSError:
            raise MPU6050Error("no IMU answers at I2C address 0x%02x: check wiring and "
                               "the board config's i2c pins" % self.address)
        if who not in _KNOWN_IDS:
            raise MPU6050Error("device at 0x%02x says WHO_AM_I=0x%02x, not an MPU6050 "
                               "(expected 0x68)" % (self.address, who))
        self.who_am_i = who
        self._write(_PWR_MGMT_1, _DEVICE_RESET)
        self._sleep_ms(100)  # datasheet: wait 100 ms after DEVICE_RESET
        self.wake()
        self._write(_PWR_MGMT_2, 0)  # all six axes on
        self._write(_CONFIG, self.dlpf)
        self._write(_SMPLRT_DIV, 1000 // self.rate_hz - 1)
        self._write(_GYRO_CONFIG, GYRO_RANGES[self.gyro_range][0] << 3)
        self._write(_ACCEL_CONFIG, ACCEL_RANGES[self.accel_range][0] << 3)
        self._write(_INT_ENABLE, _DATA_RDY)
        if self._read(_PWR_MGMT_1) & _SLEEP:
            raise MPU6050Error("the IMU did not wake up (PWR_MGMT_1 still has SLEEP set)")

    def wake(self):
        self._write(_PWR_MGMT_1, _CLKSEL_PLL_XGYRO)
        self._sleep_ms(30)  # gyro start-up time is 30 ms typical

    def sleep(self):
        """Low-power sleep (about 5 uA); wake() resumes with the same settings."""
        self._write(_PWR_MGMT_1, _SLEEP | _CLKSEL_PLL_XGYRO)

    # -- reading -------------------------------------------------------------------------
    def data_ready(self):
        """True once a new sample is in the data registers (INT_STATUS clears on read)."""
        return bool(self._read(_INT_STATUS) & _DATA_RDY)

    def read(self, buf):
        """Fill buf[0:6] with raw ax, ay, az, gx, gy, gz counts; returns True."""
        b = self._burst
        self.i2c.readfrom_mem_into(self.address, _ACCEL_XOUT_H, b)
        for i in range(3):
            v = (b[2 * i] << 8) | b[2 * i + 1]
            buf[i] = v - 65536 if v & 0x8000 else v
            v = (b[8 + 2 * i] << 8) | b[9 + 2 * i]
            buf[3 + i] = v - 65536 if v & 0x8000 else v
        return True

    def temperature_c(self):
        """Die temperature in deg C (register map 4.18: TEMP_OUT / 340 + 36.53)."""
        raw = self.i2c.readfrom_mem(self.address, _TEMP_OUT_H, 2)
        v = (raw[0] << 8) | raw[1]
        if v & 0x8000:
            v -= 65536
        return v / 340 + 36.53

    def scaled(self, buf):
        """Physical units from a raw frame: ([ax, ay, az] in g, [gx, gy, gz] in deg/s)."""
        a = self.accel_lsb_per_g
        g = self.gyro_lsb_per_dps
        return [buf[i] / a for i in range(3)], [buf[3 + i] / g for i in range(3)]
