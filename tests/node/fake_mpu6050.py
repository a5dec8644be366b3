"""Test double for the I2C bus with an MPU6050 on it (MicroPython code, used by tests/node).

Emulates the parts of the register map (RM-MPU-6000A rev 4.2) the driver relies on:
power-on defaults (PWR_MGMT_1 = 0x40: asleep; WHO_AM_I = 0x68), DEVICE_RESET restoring
them, read-only data registers, register auto-increment in bursts, INT_STATUS cleared by
reading it, and samples that only land in the data registers while the chip is awake.
A wrong address raises OSError(19) (ENODEV), as machine.I2C does when nobody ACKs.
Reads allocate nothing, so a test can check that the driver's read() does not either.
"""

_PWR_MGMT_1 = 0x6B
_INT_ENABLE = 0x38
_INT_STATUS = 0x3A
_DATA_FIRST = 0x3B
_DATA_LAST = 0x48
_WHO_AM_I = 0x75


class FakeMPU6050Bus:
    def __init__(self, address=0x68, who_am_i=0x68):
        self.address = address
        self.who_am_i = who_am_i
        self.regs = bytearray(128)
        self.resets = 0
        self.writes = []  # (register, value) in order
        self.reads = 0  # read transactions
        self.last_read_reg = -1
        self.last_read_len = 0
        self._power_on()

    def _power_on(self):
        for i in range(128):
            self.regs[i] = 0
        self.regs[_PWR_MGMT_1] = 0x40
        self.regs[_WHO_AM_I] = self.who_am_i

    def _check(self, addr):
        if addr != self.address:
            raise OSError(19)

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        for i in range(len(buf)):
            r = (reg + i) & 0x7F
            v = buf[i]
            self.writes.append((r, v))
            if r == _PWR_MGMT_1 and v & 0x80:
                self._power_on()  # DEVICE_RESET: all registers to defaults, bit self-clears
                self.resets += 1
            elif _INT_STATUS <= r <= _DATA_LAST or r == _WHO_AM_I:
                pass  # read-only
            else:
                self.regs[r] = v

    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        self.reads += 1
        self.last_read_reg = reg
        self.last_read_len = len(buf)
        for i in range(len(buf)):
            r = (reg + i) & 0x7F
            buf[i] = self.regs[r]
            if r == _INT_STATUS:
                self.regs[r] = 0  # INT_STATUS clears when read

    def readfrom_mem(self, addr, reg, n):
        b = bytearray(n)
        self.readfrom_mem_into(addr, reg, b)
        return bytes(b)

    def convert(self, ax, ay, az, temp, gx, gy, gz):
        """The chip takes a sample: True if it reached the data registers (awake)."""
        if self.regs[_PWR_MGMT_1] & 0x40:
            return False
        vals = (ax, ay, az, temp, gx, gy, gz)
        for i in range(7):
            v = vals[i] & 0xFFFF
            self.regs[_DATA_FIRST + 2 * i] = v >> 8
            self.regs[_DATA_FIRST + 2 * i + 1] = v & 0xFF
        if self.regs[_INT_ENABLE] & 1:
            self.regs[_INT_STATUS] |= 1
        return True

    def reg(self, r):
        return self.regs[r]
