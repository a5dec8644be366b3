"""The board seam on the virtual board (MicroPython unix port): no GPIO, no buses.

Sensors come from the replay source instead; the LED is a variable tests can read.
"""

import machine

platform = "virtual"
led_state = False


def led(on):
    global led_state
    led_state = bool(on)


def unique_id():
    try:
        return machine.unique_id()  # the virtual board's machine shim provides one
    except AttributeError:
        return b"virtual"


def i2c(freq=400000):
    return None


def adc(n):
    return None


def reset():
    # machine.reset exists in the virtual board's machine shim (restarts the VM).
    getattr(machine, "reset", machine.soft_reset)()


def soft_reset():
    machine.soft_reset()


# --- app support: watchdog, sleep, sampling timer, network (used by tsnode.app) -------------


class _Watchdog:
    """No hardware to reset here; counts feeds so tests can see the app feeding it."""

    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def watchdog(timeout_ms):
    return _Watchdog(timeout_ms)


def idle():
    import time

    time.sleep_ms(1)


def light_sleep(ms):
    import time

    time.sleep_ms(ms)


def timer(rate_hz, callback):
    return None  # no hardware timer on the unix port: the app paces itself by ticks


def set_wifi(ssid, password):
    pass


def network_up(timeout_ms=10000):
    return True  # the host's network (loopback)
