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


# --- app support: watchdog, sleep, sampling timer, WiFi (used by tsnode.app) ----------------


def watchdog(timeout_ms):
    # machine.WDT cannot be stopped once started (ESP-IDF task watchdog): after the app stops
    # the board resets within timeout_ms unless something keeps feeding it.
    return machine.WDT(timeout=timeout_ms)


def idle():
    machine.idle()


def light_sleep(ms):
    # CPU and most peripherals pause; RAM and the GC heap are kept, so the app resumes in place.
    machine.lightsleep(ms)


def timer(rate_hz, callback):
    t = machine.Timer(0)
    t.init(period=max(1, 1000 // rate_hz), mode=machine.Timer.PERIODIC, callback=callback)
    return t


_wifi = None  # (ssid, password)


def set_wifi(ssid, password):
    global _wifi
    _wifi = (ssid, password) if ssid else None


def network_up(timeout_ms=10000):
    """Connect the WiFi station (credentials from set_wifi); True once connected."""
    import network

    sta = network.WLAN(network.STA_IF)
    if sta.active() and sta.isconnected():
        return True
    if _wifi is None:
        return False
    sta.active(True)
    sta.connect(_wifi[0], _wifi[1])
    import time

    start = time.ticks_ms()
    while not sta.isconnected():
        if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
            return False
        time.sleep_ms(100)
    return True
