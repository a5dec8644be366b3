"""Shared pytest fixtures: the board and target options, and the MicroPython unix port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    group = parser.getgroup("tinysense")
    group.addoption("--target", default=os.environ.get("TINYSENSE_TARGET", "virtual"),
                    help="node to run hil tests on: auto | virtual | qemu | <port or URL>")
    group.addoption("--board", default=os.environ.get("TINYSENSE_BOARD", "ESP32_GENERIC"),
                    help="board config id for hil tests")


@pytest.fixture(scope="session")
def target_option(request) -> str:
    return request.config.getoption("--target")


@pytest.fixture(scope="session")
def board_option(request) -> str:
    return request.config.getoption("--board")


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
