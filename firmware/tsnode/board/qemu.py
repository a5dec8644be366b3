"""The board seam on the RV32 QEMU board (MicroPython's ports/qemu, ESP32-C3-class): the virtual
board's seam (no GPIO or buses, sensors from the replay source, machine.reset() restarts QEMU),
except that there is no network at all: the uplink goes over the serial port."""

from tsnode.board.virtual import *  # noqa: F403

platform = "qemu"
network = False  # no socket module: the app sends its uplink over serial (tsnode.appstart)


def network_up(timeout_ms=10000):
    return False
