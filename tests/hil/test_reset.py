"""Reset and reconnect: what survives a soft reset, a hard reset and a host reconnect."""

from __future__ import annotations

import pytest

from tinysense.pytest_plugin import reconnect

pytestmark = pytest.mark.hil

MARK = "hil_mark = 1  # lives in the REPL globals until the VM restarts"
HAS_MARK = "print('hil_mark' in globals())"


def test_soft_reset_clears_ram_and_keeps_files(node):
    node.exec(MARK + "\nopen('/hil_reset.txt', 'w').write('kept')")
    node.soft_reset()
    assert node.exec(HAS_MARK) == "False\n"
    assert node.get("/hil_reset.txt") == b"kept"
    node.remove("/hil_reset.txt")


def test_machine_soft_reset_from_running_code(node, dut):
    node.exec(MARK)
    node.transport.exec_raw_no_follow("import machine; machine.soft_reset()")
    dut.expect(r"soft reboot", 15)
    dut.expect(r"raw REPL; CTRL-B to exit\n>", 15)  # back in the raw REPL, as a board does
    dut.raw_repl()
    assert node.exec(HAS_MARK) == "False\n"
    assert node.exec("print(6 * 7)") == "42\n"


def test_hard_reset_then_reconnect(node):
    """machine.reset() boots the node from scratch (main.py starts the app); the host
    reconnects (a native-USB port vanishes meanwhile) and finds a fresh interpreter."""
    node.exec(MARK)
    node.transport.exec_raw_no_follow("import machine; machine.reset()")
    reconnect(node, timeout=60)
    assert node.exec(HAS_MARK) == "False\n"
    assert node.exec("print('alive')") == "alive\n"


@pytest.mark.needs("emulated")  # opening a board's UART bridge may pulse EN and reset it
def test_host_reconnect_does_not_reset_the_node(node):
    node.exec(MARK)
    reconnect(node)
    assert node.exec(HAS_MARK) == "True\n"


def test_ctrl_c_interrupts_a_busy_loop(node, dut):
    node.transport.exec_raw_no_follow("import time\nprint('busy')\nwhile True:\n time.sleep_ms(5)")
    dut.expect(r"busy", 10)
    dut.write(b"\x03")
    dut.expect(r"KeyboardInterrupt", 10)
    dut.raw_repl()
    assert node.exec("print('after')") == "after\n"
