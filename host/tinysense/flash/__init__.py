"""Flashing ESP32 boards: esptool as a library, firmware cache, flash images, ROM loader."""
