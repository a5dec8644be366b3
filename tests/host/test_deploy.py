"""Deploy on the host side: mpy-cross for every ESP32 arch, the only-changed plan, scan parsing."""

from __future__ import annotations

import hashlib
import json

import pytest

from tinysense.boards import load_board
from tinysense.node.deploy import (BOARD_JSON, MPY_ARCHS, DeployFile, _node_arch, board_json,
                              compile_firmware, parse_scan, plan)
from tinysense.errors import TinysenseError
from tinysense.paths import FIRMWARE_DIR


@pytest.mark.parametrize("arch", ["xtensawin", "rv32imc", "x64"])
def test_all_firmware_compiles_for(arch, tmp_path):
    files = compile_firmware(arch, FIRMWARE_DIR, tmp_path / arch)
    sources = sorted(p.relative_to(FIRMWARE_DIR).as_posix() for p in FIRMWARE_DIR.rglob("*.py")
                     if "__pycache__" not in p.parts)
    remotes = {f.remote for f in files}
    for rel in sources:
        expected = "/" + (rel if rel in ("boot.py", "main.py") else rel[:-3] + ".mpy")
        assert expected in remotes, f"{rel} not deployed"
    for f in files:
        data = f.local.read_bytes()
        assert f.sha256 == hashlib.sha256(data).hexdigest() and f.size == len(data)
        if f.remote.endswith(".mpy"):
            # .mpy header: 'M', version 6, then arch index << 2 | sub-version 3 for a module
            # with native (viper) code, or 0 for a bytecode-only module (loads anywhere).
            assert data[0:2] == b"M\x06", f.remote
            assert data[2] in (0, MPY_ARCHS.index(arch) << 2 | 3), f.remote
    assert {"/boot.py", "/main.py"} <= remotes


def test_compile_error_names_file_and_line(tmp_path):
    src = tmp_path / "fw"
    (src / "tsnode").mkdir(parents=True)
    (src / "tsnode" / "bad.py").write_text(
        "@micropython.viper\ndef f(x: int) -> int:\n    return x + 'a'\n")
    with pytest.raises(TinysenseError, match=r"tsnode/bad.py.*line"):
        compile_firmware("xtensawin", src, tmp_path / "build")


def test_compile_reuses_fresh_outputs(tmp_path):
    src = tmp_path / "fw"
    (src / "tsnode").mkdir(parents=True)
    (src / "tsnode" / "a.py").write_text("X = 1\n")
    (src / "main.py").write_text("print('main')\n")
    first = compile_firmware("x64", src, tmp_path / "build")
    mtime = (tmp_path / "build" / "tsnode" / "a.mpy").stat().st_mtime_ns
    again = compile_firmware("x64", src, tmp_path / "build")
    assert first == again
    assert (tmp_path / "build" / "tsnode" / "a.mpy").stat().st_mtime_ns == mtime
    assert {f.remote for f in first} == {"/tsnode/a.mpy", "/main.py"}


def test_compile_follows_the_source_bytes_not_their_mtime(tmp_path):
    """A source replaced by one with an older mtime (cp -p, rsync, tar, a copied build
    directory) is recompiled: outputs are reused only for the very bytes they came from."""
    import os

    src = tmp_path / "fw"
    (src / "tsnode").mkdir(parents=True)
    a = src / "tsnode" / "a.py"
    a.write_text("X = 1\n")
    first = compile_firmware("x64", src, tmp_path / "build")
    a.write_text("X = 2222\n")
    os.utime(a, ns=(1, 1))                       # older than the compiled .mpy
    second = compile_firmware("x64", src, tmp_path / "build")
    assert first != second                       # recompiled
    a.write_text("X = 1\n")
    os.utime(a, ns=(1, 1))
    assert compile_firmware("x64", src, tmp_path / "build") == first


def _file(remote: str, data: bytes) -> DeployFile:
    return DeployFile(remote, hashlib.sha256(data).hexdigest(), len(data), data=data)


def test_plan_copies_only_what_differs():
    files = [_file("/a.mpy", b"a"), _file("/b.mpy", b"b"), _file("/c.mpy", b"c")]
    remote = {"/a.mpy": hashlib.sha256(b"a").hexdigest(),  # same
              "/b.mpy": hashlib.sha256(b"old").hexdigest(),  # changed
              "/c.mpy": None}  # missing on the node
    changed, unchanged = plan(files, remote)
    assert [f.remote for f in changed] == ["/b.mpy", "/c.mpy"]
    assert [f.remote for f in unchanged] == ["/a.mpy"]
    changed, unchanged = plan(files, remote, force=True)
    assert len(changed) == 3 and not unchanged


def test_parse_scan():
    text = ("mpy 2822\nplatform linux\nd /tsnode/engine\nf /tsnode/engine/ops.mpy "
            + "ab" * 32 + "\nf /boot.py -\nf /my file.txt " + "cd" * 32 + "\n")
    scan = parse_scan(text)
    assert scan.mpy == 2822 and scan.platform == "linux" and scan.dirs == {"/tsnode/engine"}
    mpy, hashes, dirs = scan  # still unpacks as the (mpy, hashes, dirs) it used to be
    assert (mpy, dirs) == (2822, {"/tsnode/engine"}) and hashes is scan.hashes
    assert scan.kind("board") == "virtual" and scan.kind("qemu") == "qemu"
    assert parse_scan("platform esp32").kind("board") == "board"
    assert scan.hashes == {"/tsnode/engine/ops.mpy": "ab" * 32, "/boot.py": None,
                      "/my file.txt": "cd" * 32}


def test_node_arch_from_sys_implementation_mpy():
    esp32, virtual = load_board("ESP32_GENERIC"), load_board("VIRTUAL")
    assert _node_arch(2822, virtual, "virtual") == "x64"  # unix port on x86-64: 6.3, x64
    assert _node_arch(6 | 3 << 8 | 10 << 10, esp32, "board") == "xtensawin"
    with pytest.raises(TinysenseError, match="pass the right --board"):
        _node_arch(6 | 3 << 8 | 11 << 10, esp32, "board")  # an ESP32-C3 on --board ESP32
    with pytest.raises(TinysenseError, match=r"\.mpy v5"):
        _node_arch(5, esp32, "board")


def test_board_json_has_what_node_code_reads():
    doc = json.loads(board_json(load_board("ESP32_GENERIC"), "virtual"))
    assert doc["name"] == "ESP32_GENERIC" and doc["target"] == "virtual"
    assert doc["heap_budget"] == 112000 and doc["pins"]["led"] == 2
    assert doc["sensors"][0]["kind"] == "mpu6050"
    assert BOARD_JSON == "/tsnode_board.json"
