"""A crash in the app loop: the node logs it, soft-resets, runs the app again, and stops
restarting (staying reachable in the REPL) when the app crashes again and again."""

from __future__ import annotations

import contextlib

import pytest

pytestmark = pytest.mark.hil

# A stand-in app for main.py (named in /app.txt): it counts its starts in a file and
# crashes after a few loop iterations.
CRASHY_APP = """\
import time


def main():
    try:
        starts = int(open('/hil_starts.txt').read()) + 1
    except OSError:
        starts = 1
    open('/hil_starts.txt', 'w').write(str(starts))
    n = 0
    while True:
        n += 1
        print('crashy: start %d tick %d' % (starts, n))
        if n == 3:
            raise ValueError('crashy: boom %d' % starts)
        time.sleep_ms(20)
"""
FILES = ("/app.txt", "/hil_crashy.py", "/hil_starts.txt", "/crash.log", "/crash.state")


@pytest.fixture
def crashy_node(node):
    """The node with main.py pointed at the crashing app; everything restored afterwards."""
    noapp = node.exists("/noapp")
    if noapp:
        node.remove("/noapp")
    for path in FILES:
        if node.exists(path):
            node.remove(path)
    node.put(CRASHY_APP.encode(), "/hil_crashy.py")
    node.put(b"hil_crashy\n", "/app.txt")
    yield node
    node.soft_reset()  # Ctrl-C + raw REPL, whatever state the test left the node in
    for path in FILES:
        with contextlib.suppress(Exception):
            node.remove(path)
    if noapp:
        node.put(b"", "/noapp")


def test_app_crash_is_logged_and_the_node_recovers(crashy_node, dut):
    node = crashy_node
    node.transport.exit_raw_repl()  # friendly REPL: a soft reset there runs main.py
    dut.drain()
    dut.write(b"\x04")
    dut.expect(r"soft reboot", 15)
    # first run crashes, the supervisor logs it and soft-resets; main.py runs the app again
    dut.expect(r"crashy: start 1 tick 3", 15)
    dut.expect(r"ValueError: crashy: boom 1", 10)
    dut.expect(r"supervise: app crashed \(1 in a row\); soft reset", 10)
    dut.expect(r"soft reboot", 15)
    dut.expect(r"crashy: start 2 tick 1", 15)
    dut.expect(r"supervise: app crashed \(2 in a row\); soft reset", 15)
    # the third crash in a row is a crash loop: no more resets, the REPL stays usable
    dut.expect(r"crashy: start 3 tick 3", 15)
    dut.expect(r"supervise: app crashed 3 times in a row; staying in the REPL", 10)
    dut.expect(r">>> ", 10)
    dut.raw_repl()
    assert node.get("/hil_starts.txt") == b"3"
    log = node.get("/crash.log").decode()
    assert [f"crashy: boom {i}" in log for i in (1, 2, 3)] == [True, True, True]
    assert not node.exists("/crash.state")  # re-armed: the next hard reset tries again


def test_ctrl_c_stops_the_app_without_a_restart(crashy_node, dut):
    node = crashy_node
    node.put(CRASHY_APP.replace("if n == 3:", "if n == 10**9:").encode(), "/hil_crashy.py")
    node.transport.exit_raw_repl()
    dut.drain()
    dut.write(b"\x04")
    dut.expect(r"crashy: start 1 tick 5", 15)
    dut.write(b"\x03")
    dut.expect(r"supervise: app stopped \(Ctrl-C\); REPL", 10)
    dut.expect(r">>> ", 10)
    dut.raw_repl()
    assert not node.exists("/crash.log")
