"""Helpers for the uplink node tests: run a driver script from uplink_mp/ on the unix port."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import REPO, micropython_exe

MP_DIR = Path(__file__).resolve().parent / "uplink_mp"
VECTORS = REPO / "tests" / "vectors" / "uplink"


def mp_env() -> dict:
    env = dict(os.environ)
    env["MICROPYPATH"] = f"{REPO / 'firmware'}:{MP_DIR}"
    return env


def run_mp(script: str, *args: str, cwd: Path | None = None, heap: str = "512K",
           timeout: float = 120) -> str:
    """Run uplink_mp/<script> with argv; return stdout, or fail with its output."""
    cmd = [micropython_exe(), "-X", f"heapsize={heap}", str(MP_DIR / script), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=mp_env(), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc.stdout
