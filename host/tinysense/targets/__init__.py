"""How to reach a node: a real board on a serial port, Espressif's QEMU, or the virtual board."""
