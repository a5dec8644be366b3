"""Sensor sources for the app: MPU6050 IMU, ADC, replayed recordings, shared features.

Every source has `n_channels`, `rate_hz` and `read(buf) -> bool` that fills an array('h')
of n_channels int16 samples (raw sensor counts). See docs/models.md for what the models
expect and docs/formats/recording.md for the replay file.
"""
