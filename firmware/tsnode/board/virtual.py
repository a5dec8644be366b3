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
