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
    """The unix-port executable (env TINYSENSE_MICROPYTHON, else the one beside python)."""
    exe = os.environ.get("TINYSENSE_MICROPYTHON")
    if exe:
        return exe
    beside = Path(sys.executable).with_name("micropython")
    return str(beside) if beside.exists() else (shutil.which("micropython") or "micropython")


@pytest.fixture(scope="session")
def micropython() -> str:
    return micropython_exe()


def run_micropython(script: str, *, cwd: Path | None = None, heap: str = "2M",
                    path: list[str] | None = None, timeout: float = 120) -> str:
    """Run a MicroPython script on the unix port with firmware/ importable; return stdout.

    Raises AssertionError with the output when the script fails.
    """
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(path or [str(REPO / "firmware"), ".frozen"])
    proc = subprocess.run([micropython_exe(), "-X", f"heapsize={heap}", "-c", script],
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


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    """A real mosquitto broker on a free loopback port for this test session: (host, port).

    Fails (never skips) when mosquitto is missing: `make setup` installs it.
    """
    import socket
    import time

    exe = mosquitto_exe()
    if not exe:
        pytest.fail("mosquitto not found: run `make setup` (installs the Debian package "
                    "mosquitto) or set TINYSENSE_MOSQUITTO")
    workdir = tmp_path_factory.mktemp("mosquitto")
    workdir.chmod(0o755)  # the broker may drop root privileges before reading it
    last_log = ""
    for _attempt in range(3):
        port = _free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                        "max_queued_messages 100000\npersistence false\nlog_dest stderr\n")
        conf.chmod(0o644)
        log = open(workdir / f"mosquitto-{port}.log", "wb")
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            try:
                yield ("127.0.0.1", port)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                log.close()
            return
        log.close()
        last_log = (workdir / f"mosquitto-{port}.log").read_text(errors="replace")
    pytest.fail(f"mosquitto did not start; its log:\n{last_log}")
