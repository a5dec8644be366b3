"""open_source(): the sample source a board config's `[[sensors]]` entry names.

Needed once, at start: tsnode.appstart imports it from here and unloads it again, so its
code does not stay in the heap of the running app (tsnode.sensors.open_source is the same
function for other callers).
"""

from tsnode.sensors import SensorError


def open_source(spec, board=None, replay_path=None, speed=1, loop=False, rate_hz=None):
    """The sample source a board config's `[[sensors]]` entry names.

    spec: the entry as a dict: {"kind": "mpu6050", "address": 0x68} | {"kind": "replay"} |
    {"kind": "adc", "pins": [34], "shift": 4}. board: the tsnode.board module (or any object
    with i2c() and adc(pin)); the drivers get their bus objects from it. replay_path,
    speed, loop: for "replay". rate_hz: the model's sample rate (mpu6050, adc).
    Modules are imported on demand, so a board only loads the driver it uses.
    """
    kind = spec.get("kind")
    if kind == "replay":
        if not replay_path:
            raise SensorError("a replay source needs a recording file (.tsrc) to play")
        from tsnode.sensors.replay import ReplaySource

        return ReplaySource(replay_path, speed=speed, loop=loop)
    if kind == "mpu6050":
        i2c = board.i2c() if board else None
        if i2c is None:
            raise SensorError("the board config names an MPU6050 but this board has no I2C "
                              "bus: set pins i2c_scl/i2c_sda, or use the replay source")
        from tsnode.sensors.mpu6050 import MPU6050

        return MPU6050(i2c, address=spec.get("address", 0x68), rate_hz=rate_hz or 10)
    if kind == "adc":
        adcs = [board.adc(p) for p in spec.get("pins", ())] if board else []
        if not adcs or None in adcs:
            raise SensorError("the board config names an ADC source but no ADC pins work "
                              "here: list them in the sensor's pins")
        from tsnode.sensors.adc import AdcSource

        return AdcSource(adcs, rate_hz or 1, shift=spec.get("shift", 0))
    raise SensorError("unknown sensor kind %r (known: mpu6050, adc, replay)" % (kind,))
