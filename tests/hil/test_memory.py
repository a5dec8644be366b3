"""Memory budget per board: the GC heap the board config promises is really there, and the
largest model the converter says fits still runs with the app's modules in the heap."""

from __future__ import annotations

import base64
import json

import pytest

from tinysense.convert import convert_model
from tinysense.convert.report import IO_CHUNK
from tinysense.node import NodeError
from tinysense.paths import CONFORMANCE_DIR
from tinysense.validate.nodeside import place_package

pytestmark = pytest.mark.hil

# Fills the heap with 1 KiB blocks until MemoryError (a board's heap grows on demand, so only
# allocating shows what it really has), then frees them. Prints: blocks, bytes in use before.
FILL = """
def _fill():
    import gc
    gc.collect()
    used = gc.mem_alloc()
    blocks = []
    n = 0
    try:
        while True:
            blocks.append(bytearray(1024))
            n += 1
    except MemoryError:
        blocks = None  # locals only: nothing above may allocate while the heap is full
    gc.collect()
    return n, used
_r = _fill()
print(_r[0], _r[1])
"""

# The modules a running node holds: the app (when deployed) and what it and the host tools
# use. Prints the heap each one took, then the total and what is left.
RUNTIME_MODULES = ["tsnode.supervise", "tsnode.board", "tsnode.agent", "tsnode.uplink.ccm",
                   "tsnode.uplink.frame", "tsnode.uplink.records", "tsnode.app"]
IMPORT = """
import gc, os
def _deployed(m):
    p = '/' + m.replace('.', '/')
    for s in ('.mpy', '.py', '/__init__.mpy', '/__init__.py'):
        try:
            os.stat(p + s)
            return True
        except OSError:
            pass
    return False
gc.collect()
_base = gc.mem_alloc()
for _m in {modules!r}:
    if not _deployed(_m):
        print('absent', _m)
        continue
    gc.collect()
    _a = gc.mem_alloc()
    __import__(_m)
    gc.collect()
    print('ok', _m, gc.mem_alloc() - _a)
gc.collect()
print('total', gc.mem_alloc() - _base, gc.mem_free())
"""


def test_heap_budget_is_really_there(node, board_config, record_property):
    blocks, used = (int(x) for x in node.exec(FILL, timeout=120).split())
    capacity = blocks * 1024 + used
    record_property("heap_capacity_bytes", capacity)
    # 1 KiB blocks cost 1 KiB + a GC block of slack each, and the list of them grows: 90%
    # of what the board config promises must be allocatable.
    assert capacity >= 0.9 * board_config.heap_budget, (
        f"{board_config.name} heap: {capacity:,} B allocatable, config promises "
        f"{board_config.heap_budget:,} B")
    # and it is all given back
    blocks_again, _ = (int(x) for x in node.exec(FILL, timeout=120).split())
    assert blocks_again >= blocks - 2


def test_firmware_footprint(node, board_config, record_property):
    """What the runtime modules take (recorded; the budget itself is checked below)."""
    out = node.exec(IMPORT.format(modules=RUNTIME_MODULES), timeout=60)
    lines = out.splitlines()
    imported = [line.split()[1] for line in lines if line.startswith("ok ")]
    assert {"tsnode.supervise", "tsnode.board"} <= set(imported), out
    total, free = (int(x) for x in lines[-1].split()[1:])
    record_property("firmware_heap_bytes", total)
    record_property("heap_free_after_firmware", free)
    assert 0 < total < board_config.heap_budget and free > 0


def _largest_fitting_model(board):
    fitting = []
    for path in sorted(CONFORMANCE_DIR.glob("*.tflite")):
        report = convert_model(path, board=board).report
        if report.fits:
            fitting.append((report.heap_needed, path.name, path))
    assert fitting, f"no conformance model fits {board.name}"
    return max(fitting)


def test_largest_model_that_fits_runs_beside_the_app(node, board_config, record_property):
    """The converter's fit verdict is a promise: the largest conformance model it says fits
    this board loads and runs with the app's modules (app, uplink, supervisor) in the heap."""
    needed, name, path = _largest_fitting_model(board_config)
    converted = convert_model(path, board=board_config)
    # where the converter planned it (the ROMFS partition, if the node has one: that resets it)
    remote = place_package(node, converted.package, converted.report, "hil_model.tsm")
    try:
        node.exec(IMPORT.format(modules=RUNTIME_MODULES), timeout=60)
        free = int(node.exec("import gc\ngc.collect()\nprint(gc.mem_free())"))
        try:
            info = node.exec(f"import tsnode.agent as agent\nagent.load({remote!r})",
                             timeout=120)
            n_in = sum(io["nbytes"] for io in json.loads(info.strip().splitlines()[-1])["inputs"])
            for at in range(0, n_in, IO_CHUNK):   # the input as validate sends it: in chunks
                chunk = base64.b64encode(bytes(min(IO_CHUNK, n_in - at)))
                node.exec(f"agent.put_input({at}, {chunk!r})", timeout=60)
            node.exec("agent.run()\nagent.get_output(0, 1)", timeout=300)
        except NodeError as exc:
            if "MemoryError" not in str(exc):
                raise
            pytest.fail(f"{name}: the converter says it fits {board_config.name} "
                        f"({needed:,} B of the {board_config.heap_budget:,} B budget), but "
                        f"with the app's modules loaded ({free:,} B free) the node ran out "
                        f"of memory: {str(exc).splitlines()[0]}")
        placement = json.loads(info.strip().splitlines()[-1])["placement"]
        record_property("largest_fitting_model", f"{name} ({placement}, {needed} B planned, "
                        f"{free} B free)")
    finally:
        node.soft_reset()
        if not remote.startswith("/rom/"):
            node.remove(remote)
