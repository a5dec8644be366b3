"""tinysense host tools: convert, deploy, validate, flash, monitor and receive from ESP32 nodes."""

__version__ = "0.1.0"
