"""The virtual board itself, driven by real mpremote (a subprocess) over its pty and TCP port.

These start their own virtual board in a temporary directory, whatever --target says.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from conftest import virtual_node_arch, x86_micropython
from tinysense.targets.virtual import running_board, start_board, stop_board

pytestmark = pytest.mark.hil

MPREMOTE = [sys.executable, "-m", "mpremote"]


def mpremote(url: str, *args: str, timeout: float = 30) -> str:
    proc = subprocess.run(MPREMOTE + ["connect", url, *args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"mpremote {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Console:
    """A plain serial client on the board's port (what a terminal would see)."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, timeout=0.05)
        self.seen = b""

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def expect(self, token: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while token not in self.seen and time.monotonic() < deadline:
            self.seen += self.port.read(4096)
        assert token in self.seen, f"expected {token!r}, received {self.seen!r}"
        before, _, self.seen = self.seen.partition(token)
        return before + token

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def board(tmp_path):
    vb = start_board("ESP32_GENERIC", tcp=0, directory=tmp_path / "vb", parent_bound=True)
    yield vb
    stop_board("ESP32_GENERIC", tmp_path / "vb")


def test_exec_over_tcp_and_pty(board):
    out = mpremote(board.tcp_url, "exec", "import sys; print(sys.implementation)")
    assert "name='micropython'" in out
    out = mpremote(str(board.tty), "exec", "import gc; gc.collect(); print(gc.mem_free())")
    assert 90_000 < int(out) <= 112_000  # the board's heap budget, not the unix port's 2 MB


def test_fs_cp_ls_and_soft_reset_keeps_port_usable(board, tmp_path):
    local = tmp_path / "hello.py"
    local.write_text("X = 42\n")
    out = mpremote(board.tcp_url, "fs", "mkdir", "lib", "+", "fs", "cp", str(local),
                   ":lib/hello.py", "+", "fs", "ls", ":lib", "+", "soft-reset", "+",
                   "exec", "import hello; print('X', hello.X)", "+", "soft-reset", "+",
                   "fs", "ls")
    assert "hello.py" in out and "X 42" in out and "lib/" in out
    assert (board.flash_dir / "lib" / "hello.py").read_text() == "X = 42\n"
    # and the pty still works after the TCP client's resets
    assert mpremote(str(board.tty), "exec", "print(6 * 7)").strip() == "42"
    back = tmp_path / "back.py"
    mpremote(board.pty, "fs", "cp", ":lib/hello.py", str(back))
    assert back.read_text() == "X = 42\n"


def test_boot_and_main_run_on_reset_like_a_board(tmp_path):
    directory = tmp_path / "vb"
    flash = directory / "flash"
    flash.mkdir(parents=True)
    (flash / "boot.py").write_text("open('log.txt', 'a').write('boot\\n')\nprint('BOOT.PY')\n")
    (flash / "main.py").write_text("open('log.txt', 'a').write('main\\n')\nprint('MAIN.PY')\n")
    board = start_board("ESP32_GENERIC", directory=directory, parent_bound=True)
    console = Console(board.pty)
    try:
        log = flash / "log.txt"
        assert _wait(lambda: log.exists() and log.read_text() == "boot\nmain\n")  # power-on
        console.send(b"\r\x03print('SYNC', 1)\r")
        console.expect(b"SYNC 1\r\n>>> ")
        child = running_board("ESP32_GENERIC", directory).child
        console.send(b"\x04")  # Ctrl-D at the friendly REPL: soft reset
        text = console.expect(b">>> ")
        assert b"MPY: soft reboot\r\nBOOT.PY\r\nMAIN.PY\r\n" in text
        assert (flash / "log.txt").read_text() == "boot\nmain\n" * 2
        # machine.soft_reset() and machine.reset() restart the VM too (a new process)
        console.send(b"import machine; machine.soft_reset()\r")
        console.expect(b"MAIN.PY")
        console.expect(b">>> ")
        new_child = running_board("ESP32_GENERIC", directory).child
        assert new_child != child and _wait(lambda: _gone(child))
        console.send(b"import machine; machine.reset()\r")
        text = console.expect(b">>> ")
        assert b"hard reset" in text and b"BOOT.PY" in text and b"MAIN.PY" in text
        # raw REPL soft reset (what mpremote does): boot.py runs, main.py does not
        console.send(b"\x01")
        console.expect(b"raw REPL; CTRL-B to exit\r\n>")
        console.send(b"\x04")
        text = console.expect(b"raw REPL; CTRL-B to exit\r\n>")
        assert text.startswith(b"OK\r\nMPY: soft reboot\r\nBOOT.PY\r\n")
        assert b"MAIN.PY" not in text and b"MicroPython" not in text
        console.send(b"print('raw ok')\x04")
        assert b"OKraw ok\r\n\x04\x04>" in console.expect(b"\x04>")
    finally:
        console.close()
        stop_board("ESP32_GENERIC", directory)
    assert (flash / "log.txt").read_text() == "boot\nmain\n" * 4 + "boot\n"


def test_ctrl_c_stops_a_running_main_py(board):
    (board.flash_dir / "main.py").write_text(
        "import time\nprint('APP START')\nwhile True:\n    time.sleep_ms(10)\n")
    mpremote(board.pty, "reset")  # machine.reset(): boots into main.py, which never ends
    out = mpremote(board.tcp_url, "exec", "print('interrupted', 1 + 1)")
    assert "interrupted 2" in out


def test_romfs_image_is_mounted_at_rom(board, tmp_path):
    from mpremote.romfs import make_romfs

    src = tmp_path / "romsrc"
    (src / "lib").mkdir(parents=True)
    (src / "model.bin").write_bytes(bytes(range(256)) * 4)
    (src / "lib" / "romlib.py").write_text("WHERE = 'rom'\n")
    board.romfs_image.write_bytes(make_romfs(str(src), mpy_cross=None))
    # mpremote's exec soft-resets first, and each (re)start mounts the image, as on a board
    out = mpremote(board.pty, "exec",
                   "import os, romlib, gc\n"
                   "print(sorted(os.listdir('/rom')), romlib.WHERE)\n"
                   "b = memoryview(open('/rom/model.bin', 'rb'))\n"
                   "print(len(b), b[255], b[256])\n"
                   "gc.collect(); print(gc.mem_free() > 90000)")
    assert "['lib', 'model.bin'] rom" in out
    assert "1024 255 0" in out and "True" in out


def test_stop_leaves_no_process(tmp_path):
    directory = tmp_path / "vb2"
    vb = start_board("ESP32_GENERIC", tcp=0, directory=directory)
    pids = [vb.pid, vb.child]
    assert not any(_gone(pid) for pid in pids)
    assert vb.tty.is_symlink() and os.readlink(vb.tty) == vb.pty
    assert stop_board("ESP32_GENERIC", directory).pid == vb.pid
    assert _wait(lambda: all(_gone(pid) for pid in pids)), "supervisor or VM still running"
    assert not vb.tty.exists() and not (directory / "supervisor.json").exists()
    assert running_board("ESP32_GENERIC", directory) is None
    assert stop_board("ESP32_GENERIC", directory) is None  # stopping twice is fine


def test_cli_start_stop(tmp_path):
    directory = tmp_path / "vb3"
    run = [sys.executable, "-m", "tinysense", "board"]
    proc = subprocess.run(run + ["start", "--tcp", "0", "--dir", str(directory)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    vb = running_board("ESP32_GENERIC", directory)
    try:
        assert f"socket://127.0.0.1:{vb.tcp_port}" in proc.stdout and vb.pty in proc.stdout
        assert "42" in mpremote(vb.tcp_url, "exec", "print(42)")
        again = subprocess.run(run + ["start", "--dir", str(directory)], capture_output=True,
                               text=True, timeout=60)
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        proc = subprocess.run(run + ["stop", "--dir", str(directory)], capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 0 and "stopped" in proc.stdout
    assert _wait(lambda: _gone(vb.pid) and _gone(vb.child))


def test_vm_dies_with_a_killed_supervisor(tmp_path):
    import signal

    directory = tmp_path / "vb4"
    vb = start_board("ESP32_GENERIC", directory=directory, parent_bound=True)
    os.kill(vb.pid, signal.SIGKILL)  # no clean-up at all: the pty hang-up ends the VM
    assert _wait(lambda: _gone(vb.pid) and _gone(vb.child)), "VM outlived its supervisor"
    assert running_board("ESP32_GENERIC", directory) is None


def test_each_board_directory_has_its_own_unique_id(board, tmp_path):
    code = "import machine; print(machine.unique_id().hex())"
    first = mpremote(board.tcp_url, "exec", code).strip()
    other = start_board("ESP32_GENERIC", directory=tmp_path / "other", parent_bound=True)
    try:
        second = mpremote(other.url, "exec", code).strip()
    finally:
        stop_board("ESP32_GENERIC", tmp_path / "other")
    assert len(first) == 12 and len(second) == 12 and first != second
    assert mpremote(board.url, "exec", code).strip() == first  # stable across resets


def test_ctrl_c_stops_a_boot_py_that_never_ends(board):
    (board.flash_dir / "boot.py").write_text(
        "import time\nprint('BOOT LOOP')\nwhile True:\n    time.sleep_ms(10)\n")
    console = Console(board.url)
    try:
        console.send(b"\r\x03\r\x01")
        console.expect(b"raw REPL; CTRL-B to exit\r\n>")
        console.send(b"\x04")  # soft reset in the raw REPL: boot.py runs and never returns
        console.expect(b"BOOT LOOP")
        console.send(b"\x03")  # what a host sends first: it must reach boot.py at once
        text = console.expect(b"raw REPL; CTRL-B to exit\r\n>")
        assert b"KeyboardInterrupt" in text
    finally:
        console.close()
    (board.flash_dir / "boot.py").unlink()
    assert mpremote(board.url, "exec", "print(6 * 7)").strip() == "42"


def test_heap_in_bytes_or_in_words(tmp_path, monkeypatch):
    code = "import gc; gc.collect(); print(gc.mem_free() + gc.mem_alloc())"
    totals = {}
    for mode in ("bytes", "words"):
        monkeypatch.setenv("TINYSENSE_VBOARD_HEAP", mode)
        vb = start_board("ESP32_GENERIC", directory=tmp_path / mode, parent_bound=True)
        try:
            totals[mode] = int(mpremote(vb.url, "exec", code))
        finally:
            stop_board("ESP32_GENERIC", tmp_path / mode)
    assert 100_000 < totals["bytes"] <= 112_000  # the board's budget in bytes (the default)
    # as many words as the board's 32-bit ones: the same bytes on the 32-bit build, twice as
    # many on the 64-bit fallback
    k = 2 if virtual_node_arch("ESP32_GENERIC") == "x64" else 1
    assert k * 100_000 < totals["words"] <= k * 112_000


ESP32_FACTS = """\
import gc, sys, micropython
@micropython.viper
def addr(b: ptr8) -> uint:
    return uint(b)
@micropython.viper
def mul(a: int, b: int) -> int:
    return a * b
gc.collect()
print(sys.implementation._mpy >> 10, mul(0x10000, 0x10000), hex(addr(bytearray(64))),
      gc.mem_free() + gc.mem_alloc())
"""


def test_virtual_board_is_the_32bit_build_with_an_esp32_heap(tmp_path, monkeypatch):
    """Where `make nodes` built it, the virtual board runs the 32-bit x86 unix port: 32-bit
    viper ints and a GC heap below 0x40000000 (addresses are small ints, as on an ESP32)."""
    x86 = x86_micropython()  # skips or fails (make nodes) when it is not built
    monkeypatch.delenv("TINYSENSE_MICROPYTHON", raising=False)  # the default choice
    vb = start_board("ESP32_GENERIC", directory=tmp_path / "vb", parent_bound=True)
    try:
        arch, product, address, total = mpremote(vb.url, "exec", ESP32_FACTS).split()
        state = (vb.board_dir / "supervisor.json").read_text()
    finally:
        stop_board("ESP32_GENERIC", tmp_path / "vb")
    assert x86 in state and virtual_node_arch("ESP32_GENERIC") == "x86"
    assert arch == "1"  # MP_NATIVE_ARCH_X86
    assert product == "0"  # 0x10000 * 0x10000 wraps in 32 bits
    assert int(address, 16) < 0x40000000, address
    assert 100_000 < int(total) <= 112_000  # ESP32_GENERIC's heap_budget, in bytes
