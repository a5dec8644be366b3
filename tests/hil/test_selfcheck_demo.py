"""`tinysense demo --selfcheck`: boot a virtual board, deploy firmware/, print the self-check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import virtual_node_arch
from tinysense.node.selfcheck import parse_selfcheck

pytestmark = pytest.mark.hil


def test_selfcheck_demo_on_a_virtual_board(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tinysense", "demo", "--selfcheck",
                           "--target", "virtual", "--board", "ESP32_GENERIC"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    arch = virtual_node_arch("ESP32_GENERIC")  # x86: the 32-bit build; x64: the fallback
    assert f"deployed for {arch}:" in out and "tinysense self-check" in out
    check = parse_selfcheck(out[out.index("tinysense self-check"):])
    assert check.facts["micropython"].startswith("1.") and arch in check.facts["micropython"]
    assert check.facts["board"] == "ESP32_GENERIC (virtual)"
    assert 0 < check.heap_free < 112_000
    assert check.modules["tsnode.board"] == "ok"
    assert set(check.modules) >= {"tsnode.engine", "tsnode.uplink", "tsnode.sensors",
                                  "tsnode.agent", "tsnode.app"}
    broken = {name: status for name, status in check.modules.items() if status != "ok"}
    assert not broken, f"firmware modules that do not load on the node: {broken}"
