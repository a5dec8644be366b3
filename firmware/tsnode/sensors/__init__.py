"""Sensor sources for the app: MPU6050 IMU, ADC, replayed recordings, shared features.

Every source has `n_channels`, `rate_hz` and `read(buf) -> bool` that fills an array('h')
of n_channels int16 samples (raw sensor counts). See docs/models.md for what the models
expect and docs/formats/recording.md for the replay file.
"""


class SensorError(Exception):
    pass


def open_source(spec, board=None, replay_path=None, speed=1, loop=False, rate_hz=None):
    """The source `spec` names (tsnode.sensors.source.open_source, imported on demand)."""
    from tsnode.sensors.source import open_source

    return open_source(spec, board, replay_path, speed, loop, rate_hz)
