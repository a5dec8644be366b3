"""The board seam on an ESP32 (stock MicroPython): LED, id, I2C and ADC from the board config."""

import machine

platform = "esp32"
_led = None


def _pin(name):
    from tsnode.board import pin  # imported late: tsnode.board imports this module

    return pin(name)


def led(on):
    global _led
    if _led is None:
        n = _pin("led")
        if n is None:
            return
        _led = machine.Pin(n, machine.Pin.OUT)
    _led.value(1 if on else 0)


def unique_id():
    return machine.unique_id()


def i2c(freq=400000):
    scl, sda = _pin("i2c_scl"), _pin("i2c_sda")
    if scl is None or sda is None:
        return None
    return machine.I2C(0, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)


def adc(n):
    a = machine.ADC(machine.Pin(n))
    try:
        a.atten(machine.ADC.ATTN_11DB)  # full 0..3.3 V range
    except AttributeError:
        pass
    return a


def reset():
    machine.reset()


def soft_reset():
    machine.soft_reset()
