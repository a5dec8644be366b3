"""ADC source: samples one or more ADC channels into int16 frames, like the other sources.

The board seam (tsnode.board) makes the ADC objects; this module only needs objects with
`read_u16()` (machine.ADC's API: 0..65535 whatever the converter's real resolution), so
it runs unchanged on the virtual board with any object that has that method.
"""

from micropython import const

_U16_MID = const(32768)


class AdcSource:
    """Frames of `len(adcs)` channels: (mean of 2**oversample_log2 reads - center) >> shift.

    center=32768 and shift=0 map 0..65535 onto the int16 range; shift=4 gives 12-bit
    counts (ESP32's ADC resolution). Integer-only: no allocation per read.
    """

    def __init__(self, adcs, rate_hz, center=_U16_MID, shift=0, oversample_log2=0):
        self.adcs = list(adcs)
        self.n_channels = len(self.adcs)
        self.rate_hz = rate_hz
        self.center = center
        self.shift = shift
        self._os_log2 = oversample_log2
        self._os = 1 << oversample_log2

    def read(self, buf):
        """Fill buf[0:n_channels] with one frame; always True (an ADC never runs out)."""
        for i in range(self.n_channels):
            adc = self.adcs[i]
            acc = 0
            for _ in range(self._os):
                acc += adc.read_u16()
            v = ((acc >> self._os_log2) - self.center) >> self.shift
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
            buf[i] = v
        return True
