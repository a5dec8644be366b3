"""Sample pacing for a sensor source on a board: a hardware timer tick, or light sleep.

A replay source paces itself; a real sensor is read when this says the next sample is due.
"""

import time

from micropython import const

from tsnode import board

_TIMER_MIN_PERIOD_MS = const(2)  # faster sensors are read back to back, no timer


class Pacer:
    """Waits for the next sample of a sensor at rate_hz: a hardware timer's tick (idling or
    spinning in between), or light sleep until the sample is due when samples are at least
    light_sleep_min_ms apart (sleep "auto") or always (sleep "light")."""

    def __init__(self, rate_hz, sleep="auto", light_min_ms=200):
        self.period_ms = max(1, 1000 // rate_hz)
        self.light = sleep == "light" or (sleep == "auto" and self.period_ms >= light_min_ms)
        self.spin = sleep == "none"
        self._ticks = 0
        self._timer = None
        self._due = time.ticks_ms()
        if not self.light and self.period_ms >= _TIMER_MIN_PERIOD_MS:
            self._timer = board.timer(rate_hz, self._tick)

    def _tick(self, _t):
        self._ticks += 1  # interrupt context: no allocation

    def wait(self):
        if self._timer is not None:
            while not self._ticks:
                if not self.spin:
                    board.idle()
            self._ticks = 0
            return
        self._due = time.ticks_add(self._due, self.period_ms)
        left = time.ticks_diff(self._due, time.ticks_ms())
        if left > 0:
            if self.light:
                board.light_sleep(left)
            else:
                time.sleep_ms(left)
        elif left < -1000:
            self._due = time.ticks_ms()  # stalled: do not burst to catch up

    def stop(self):
        if self._timer is not None:
            self._timer.deinit()
            self._timer = None
