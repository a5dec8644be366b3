"""The hardware seam: the only tsnode code that touches machine/network/esp32.

Picks the implementation by sys.platform: `esp32` on a board, `qemu` on the RV32 QEMU board
(the virtual seam without a network), `virtual` on the MicroPython unix port. All offer the
same small API, so everything above runs unchanged on each:

    platform            "esp32", "qemu" or "virtual"
    network             False where there is no network at all (the uplink goes over serial)
    config()            the deployed board config (/tsnode_board.json) as a dict, cached
    pin(name)           a GPIO number from the config's [pins], or None
    led(on)             the board LED (if the config names one; a no-op otherwise)
    unique_id()         bytes that identify this node (the MAC on an ESP32)
    mem_free(), mem_alloc()   GC heap numbers (after a collection when collect=True)
    ticks_ms(), ticks_us(), ticks_diff(a, b), sleep_ms(n)
    i2c()               the sensor bus from the config's i2c pins (None on the virtual board)
    adc(pin)            an ADC object with read_u16() (None on the virtual board)
    reset(), soft_reset()
    watchdog(timeout_ms) an object with feed() (machine.WDT on a board; a counter on virtual)
    idle()              wait for the next interrupt (machine.idle; a 1 ms sleep on virtual)
    light_sleep(ms)     machine.lightsleep on a board; time.sleep_ms on the virtual board
    timer(rate_hz, cb)  a periodic hardware timer calling cb(t); returns it (deinit() stops)
    set_wifi(ssid, pw), network_up(timeout_ms)   WiFi station on a board (always up on virtual)
"""

import gc
import sys
import time

from micropython import const

ticks_ms = time.ticks_ms
ticks_us = time.ticks_us
ticks_diff = time.ticks_diff
sleep_ms = time.sleep_ms

_config = None
_CONFIG_PATH = const("/tsnode_board.json")

if sys.platform == "esp32":
    from tsnode.board.esp32 import *  # noqa: F403
elif sys.platform == "qemu":
    from tsnode.board.qemu import *  # noqa: F403
else:
    from tsnode.board.virtual import *  # noqa: F403


def config():
    """The board config deploy wrote (name, chip, heap_budget, pins, sensors...), or {}."""
    global _config
    if _config is None:
        try:
            import json

            with open(_CONFIG_PATH) as f:
                _config = json.load(f)
        except (OSError, ValueError):
            _config = {}
    return _config


def pin(name):
    return config().get("pins", {}).get(name)


def mem_free(collect=False):
    if collect:
        gc.collect()
    return gc.mem_free()


def mem_alloc(collect=False):
    if collect:
        gc.collect()
    return gc.mem_alloc()
