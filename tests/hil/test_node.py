"""The node API (tinysense.node) on any --target: exec, files, hashes, resets, self-check."""

from __future__ import annotations

import hashlib

import pytest

from tinysense.node import NodeError, NodeTimeout
from tinysense.node.selfcheck import run_selfcheck

pytestmark = pytest.mark.hil


def test_exec_returns_stdout_with_newlines(node):
    assert node.exec("print(1)\nprint('a', 2)") == "1\na 2\n"
    assert node.eval("[1, 'x', None, 2.5]") == [1, "x", None, 2.5]


def test_exec_error_carries_node_traceback(node):
    with pytest.raises(NodeError) as info:
        node.exec("print('before')\ndef f():\n    return 1 // 0\nf()")
    err = info.value
    assert err.output == "before\n"
    assert err.traceback.startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError" in err.traceback and ", in f" in err.traceback
    assert str(err).startswith("the node raised ZeroDivisionError")


def test_timeout_then_recovery(node):
    with pytest.raises(NodeTimeout):
        node.exec("import time\nwhile True:\n    time.sleep_ms(1)", timeout=1)
    node.soft_reset()  # Ctrl-C stops the loop, then a soft reset
    assert node.exec("print('back')") == "back\n"


def test_files_roundtrip_and_hashes(node):
    data = bytes(range(256)) * 9 + b"tail"
    node.mkdir("/tstest/deep/er")
    node.put(data, "/tstest/deep/er/blob.bin")
    assert node.get("/tstest/deep/er/blob.bin") == data
    digest = hashlib.sha256(data).hexdigest()
    assert node.sha256("/tstest/deep/er/blob.bin") == digest
    assert node.sha256_many(["/tstest/deep/er/blob.bin", "/tstest/none"]) == {
        "/tstest/deep/er/blob.bin": digest, "/tstest/none": None}
    assert ("deep", True) in node.ls("/tstest")
    assert node.ls("/tstest/deep/er") == [("blob.bin", False)]
    assert node.exists("/tstest/deep/er/blob.bin")
    node.remove("/tstest/deep/er/blob.bin")
    assert not node.exists("/tstest/deep/er/blob.bin")
    node.put(b"", "/tstest/empty")
    assert node.get("/tstest/empty") == b"" and node.sha256("/tstest/empty") == \
        hashlib.sha256(b"").hexdigest()


def test_put_after_a_put_cut_short(node):
    """A put whose exec was cut off (a timeout, Ctrl-C) leaves its file open on the node; the
    next put to that path must win, not the stale handle when it is collected."""
    node.mkdir("/tstest")
    node.exec("_tsf = open('/tstest/cut.bin', 'wb')\n_tsf.write(b'x' * 4096)")
    data = bytes(range(256)) * 25
    node.put(data, "/tstest/cut.bin")
    node.exec("import gc\ngc.collect()")
    assert node.get("/tstest/cut.bin") == data


def test_soft_reset_clears_the_interpreter(node):
    node.exec("left_behind = 1")
    node.soft_reset()
    assert node.exec("print('left_behind' in globals())") == "False\n"


def test_deployed_firmware_and_self_check(node, board_config):
    node.deploy(progress=None)  # the session deployed already; firmware/ may have changed since
    result = node.deploy(progress=None)
    assert result.copied == [] and result.removed == [] and result.unchanged
    assert node.eval("__import__('tsnode.board').board.config()['name']") == board_config.name
    check = run_selfcheck(node)
    assert check.facts["board"].startswith(board_config.name)
    assert check.modules["tsnode.board"] == "ok"
    assert 0 < check.heap_free <= board_config.heap_budget + board_config.psram_bytes
    assert check.facts["micropython"].split()[0].startswith("1.")


def test_long_code_through_raw_paste_flow_control(node):
    values = list(range(2500))  # ~14 KB of source: many raw-paste windows
    assert node.exec(f"v = {values!r}\nprint(len(v), sum(v))") == f"2500 {sum(values)}\n"


def test_plain_raw_mode_when_raw_paste_is_off(node):
    node.repl.use_raw_paste = False  # what a device without raw-paste support gets
    try:
        assert node.exec("print('plain', 3 * 7)") == "plain 21\n"
        assert node.exec("x = " + repr(list(range(300))) + "\nprint(len(x))") == "300\n"
    finally:
        node.repl.use_raw_paste = True


def test_bench_link_runs(node):
    from tinysense.bench.link import bench_link, format_link

    result = bench_link(node, size=5000, repeat=1)
    assert all(value > 0 for value in result.values())
    assert "exec round trip" in format_link(result) and not node.exists("/linkbench.bin")
