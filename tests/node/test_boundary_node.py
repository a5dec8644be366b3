"""The node's constants as MicroPython evaluates them == what the host reads from their source.

The host takes the opcodes, header layout, record ids and line prefixes from firmware/ by
parsing it (tinysense.formats); this runs the same modules on the unix port and compares.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_micropython

from tinysense.formats import app, node_value, tsm

pytestmark = pytest.mark.node

SCRIPT = """
import json
from tsnode.engine import loader, ops, kelt
from tsnode.uplink import serial
import tsnode.report as report
print(json.dumps({
    "names": ops.NAMES, "n_params": ops.N_PARAMS,
    "cat": [kelt.concat_words([0, 0, 0, k]) for k in range(4)],
    "header": [loader.HEADER_SIZE, loader.H_N_OPS, loader.H_ARENA_SIZE, loader.H_SCRATCH_SIZE,
               loader.H_CONST_OFF, loader.MAGIC.decode(), loader.VERSION],
    "flags": [loader.F_CONST, loader.F_INPUT, loader.F_OUTPUT],
    "prefix": [serial.PREFIX, serial.ACK_PREFIX], "crash": report.EV_CRASH}))
"""


def test_node_values_equal_what_the_host_reads():
    got = json.loads(run_micropython(SCRIPT).strip().splitlines()[-1])
    assert {int(k): v for k, v in got["names"].items()} == {c: n for n, c in tsm.OPCODES.items()}
    assert {int(k): v for k, v in got["n_params"].items()} == tsm.N_PARAMS
    cat = tsm.LAYOUTS["CONCATENATION"]
    assert got["cat"] == [len(cat.words) + len(cat.each) * k for k in range(4)]
    h = tsm.HEADER_OFFSETS
    assert got["header"] == [tsm.HEADER_SIZE, h["n_ops"], h["arena_size"], h["scratch_size"],
                             h["const_off"], tsm.MAGIC.decode(), tsm.VERSION]
    assert got["flags"] == [tsm.F_CONST, tsm.F_INPUT, tsm.F_OUTPUT]
    assert got["prefix"] == [app.SERIAL_FRAME_PREFIX, app.SERIAL_ACK_PREFIX]
    assert got["crash"] == app.RECORD_IDS["EV_CRASH"] == node_value("tsnode/report.py",
                                                                   "EV_CRASH")
