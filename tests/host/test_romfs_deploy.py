"""ROMFS deploy: the image build, the virtual board's /rom, and the filesystem fallback.

The virtual board is the real MicroPython unix port (started in a private directory); the
package must then import from /rom and a model file must be readable zero-copy there.
"""

from __future__ import annotations

import pytest

from tinysense.boards import load_board
from tinysense.flash.image import ROMFS_HEADER
from tinysense.flash.romfs import build_romfs, deploy_romfs
from tinysense.node import connect
from tinysense.targets import Target
from tinysense.targets.virtual import start_board, stop_board

MODEL = bytes((i * 37) & 0xFF for i in range(3000))   # stands in for a .tsm package


@pytest.fixture
def firmware(tmp_path):
    """A small firmware tree shaped like firmware/ (with a viper function, so the image
    holds native x64 code): the tests do not depend on the state of the real node code."""
    src = tmp_path / "firmware"
    (src / "tsnode" / "engine").mkdir(parents=True)
    (src / "boot.py").write_text("# boot\n")
    (src / "main.py").write_text("# main\n")
    (src / "tsnode" / "__init__.py").write_text("VERSION = 1\n")
    (src / "tsnode" / "engine" / "__init__.py").write_text(
        "import micropython\n\n\n@micropython.viper\ndef add(a: int, b: int) -> int:\n"
        "    return a + b\n")
    return src


def test_build_romfs_layout(tmp_path, firmware):
    model = tmp_path / "kws.tsm"
    model.write_bytes(MODEL)
    image, paths = build_romfs("x64", [model], src=firmware, build_dir=tmp_path / "build")
    assert image.startswith(ROMFS_HEADER)
    assert "/rom/models/kws.tsm" in paths
    assert "/rom/tsnode/__init__.mpy" in paths
    assert not any(p.endswith((".py", "/boot.py", "/main.py")) for p in paths)


@pytest.mark.parametrize("sizes", [(3000,), (1, 2, 3, 5), (40_000, 7, 16_381)])
def test_models_start_aligned_in_the_image(tmp_path, firmware, sizes):
    """mpremote's builder packs records back to back; ours pads so that every package's
    data starts on a 4-byte boundary (no staging copy on the node), and the image still
    reads back the same files (checked with a small ROMFS reader of the format)."""
    from tinysense.flash.romfs import MODEL_ALIGN
    models = []
    for i, n in enumerate(sizes):
        models.append(tmp_path / f"m{'x' * i}{i}.tsm")
        models[-1].write_bytes(bytes((k * 13 + i) & 0xFF for k in range(n)))
    image, paths = build_romfs("x64", models, src=firmware, build_dir=tmp_path / "build")
    files, offsets = _read_romfs(image)
    for m in models:
        assert files[f"models/{m.name}"] == m.read_bytes()
        assert offsets[f"models/{m.name}"] % MODEL_ALIGN == 0
    assert files["tsnode/__init__.mpy"] == (tmp_path / "build" / "tsnode" / "__init__.mpy"
                                            ).read_bytes()


def _read_romfs(image: bytes) -> tuple[dict[str, bytes], dict[str, int]]:
    """({path: data}, {path: data offset}) of a ROMFS image (extmod/vfs_rom.c's records;
    padding skipped)."""
    def uint(pos):
        v = 0
        while True:
            b = image[pos]
            pos += 1
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                return v, pos

    def walk(pos, end, prefix, out):
        while pos < end:
            kind, pos = uint(pos)
            size, pos = uint(pos)
            nxt = pos + size
            if kind in (4, 5):    # directory, file
                n, pos = uint(pos)
                name = prefix + image[pos:pos + n].decode()
                pos += n
                if kind == 4:
                    walk(pos, nxt, name + "/", out)
                else:
                    while pos < nxt:
                        k, pos = uint(pos)
                        sz, pos = uint(pos)
                        if k == 2:    # verbatim data
                            out[name] = image[pos:pos + sz]
                            offsets[name] = pos
                        pos += sz
            pos = nxt
        return out

    assert image[:3] == ROMFS_HEADER
    size, pos = uint(3)
    offsets: dict[str, int] = {}
    return walk(pos, pos + size, "", {}), offsets


@pytest.fixture
def vboard(tmp_path):
    cfg = load_board("ESP32_GENERIC")
    vb = start_board(cfg.name, directory=tmp_path / "vb", parent_bound=True)
    yield cfg, vb
    stop_board(cfg.name, tmp_path / "vb")


def test_virtual_board_mounts_the_image_and_imports_from_rom(tmp_path, vboard, firmware):
    cfg, vb = vboard
    model = tmp_path / "kws.tsm"
    model.write_bytes(MODEL)
    node = connect(vb.url, Target("virtual", vb.url, "test"), cfg)
    try:
        # an old filesystem deploy that would shadow /rom/tsnode
        node.mkdir("/tsnode/engine")
        node.put(b"raise ImportError('stale filesystem copy')\n", "/tsnode/__init__.py")
        lines = []
        result = deploy_romfs(node, [model], src=firmware, build_dir=tmp_path / "build",
                              virtual_board=vb, say=lines.append)
        assert result.where == "virtual-romfs"
        assert vb.romfs_image.read_bytes().startswith(ROMFS_HEADER)
        assert any("has no ROMFS partition" in line for line in lines)   # ESP32_GENERIC
        assert not node.exists("/tsnode")
        out = node.exec("import tsnode, tsnode.engine\nprint(tsnode.__file__)\n"
                        "assert tsnode.engine.add(2, 3) == 5\n"
                        "m = memoryview(open('/rom/models/kws.tsm', 'rb'))\n"
                        "print(len(m), bytes(m[:4]).hex(), bytes(m[-4:]).hex())")
        file_line, model_line = out.strip().splitlines()
        assert file_line.startswith("/rom/tsnode/")
        assert model_line == f"{len(MODEL)} {MODEL[:4].hex()} {MODEL[-4:].hex()}"
        assert node.exists("/boot.py") and node.exists("/tsnode_board.json")
    finally:
        node.close()


def test_filesystem_fallback_says_so(tmp_path, firmware):
    """A board (kind 'board') without a ROMFS partition: filesystem deploy and a message.

    The 'board' here is the virtual board's pty reached as a plain serial target, with the
    VIRTUAL config (x64 code, romfs_size = 0), so the real deploy path runs."""
    cfg = load_board("VIRTUAL")
    vb = start_board(cfg.name, directory=tmp_path / "vb", parent_bound=True)
    try:
        model = tmp_path / "kws.tsm"
        model.write_bytes(MODEL)
        node = connect(vb.url, Target("board", vb.url, "test"), cfg)
        try:
            lines = []
            result = deploy_romfs(node, [model], src=firmware, build_dir=tmp_path / "build",
                                  say=lines.append)
            assert result.where == "filesystem"
            assert "no ROMFS partition" in result.message and result.message in lines
            assert node.get("/models/kws.tsm") == MODEL
            where = node.exec("import tsnode\nprint(tsnode.__file__)").strip()
            assert where in ("tsnode/__init__.mpy", "/tsnode/__init__.mpy")  # the filesystem
        finally:
            node.close()
    finally:
        stop_board(cfg.name, tmp_path / "vb")


def test_cli_deploy_romfs_on_the_virtual_board(tmp_path):
    """`tinysense deploy --romfs --model X` end to end (the real firmware/, a private
    TINYSENSE_HOME so the virtual board it starts lives in tmp_path)."""
    import os
    import subprocess
    import sys

    model = tmp_path / "kws.tsm"
    model.write_bytes(MODEL)
    env = {**os.environ, "TINYSENSE_HOME": str(tmp_path / "home")}
    env.pop("TINYSENSE_PORT", None)
    proc = subprocess.run([sys.executable, "-m", "tinysense", "deploy", "--target", "virtual",
                           "--board", "ESP32_GENERIC_C3", "--romfs", "--model", str(model)],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bytes to ROMFS at /rom" in proc.stdout
    assert "the real ESP32_GENERIC_C3 has no ROMFS partition" in proc.stdout
    image = tmp_path / "home" / "boards" / "ESP32_GENERIC_C3" / "romfs.img"
    assert image.read_bytes().startswith(ROMFS_HEADER)


class FakeRomPartition:
    """CPython stand-in for the device side of mpremote's romfs deploy (no MicroPython build
    here has a ROMFS partition: the unix port has no vfs.rom_ioctl). A `vfs` module whose
    rom_ioctl serves one partition held in a bytearray, with the ioctl numbers mpremote 1.29
    uses (1 count, 2 device, 3 prepare/erase, 4 write, 5 finish, 6 block size); code the
    transport is asked to run executes in a namespace, failures raise TransportExecError."""

    def __init__(self, size: int, block: int = 4096):
        self.part = bytearray(b"\xff" * size)
        self.block = block
        self.finished = False

    def rom_ioctl(self, op, *args):
        if op == 1:
            return 1
        if op == 2:
            return memoryview(self.part) if args[0] == 0 else -1
        if op == 6:
            return self.block
        if op == 3:
            offset, length = (args[1], args[2]) if len(args) == 3 else (0, args[1])
            self.part[offset:offset + length] = b"\xff" * length
            return 4
        if op == 4:
            offset, buf = args[1], args[2]
            self.part[offset:offset + len(buf)] = buf
            return 0
        if op == 5:
            self.finished = True
            return 0
        raise OSError(22)

    def umount(self, path):
        raise OSError(22)


class FakeTransport:
    def __init__(self):
        self.ns = {}

    def exec(self, code):
        from mpremote.transport import TransportExecError

        try:
            exec(code, self.ns)
        except Exception as exc:  # noqa: BLE001 (a device reports any exception)
            raise TransportExecError(1, repr(exc)) from None
        return b""

    def eval(self, expr):
        return eval(expr, self.ns)


def test_mpremote_romfs_deploy_glue(tmp_path, monkeypatch, firmware):
    """Our call into mpremote's romfs deploy (a private mpremote function, pinned version)
    writes the image into a ROMFS partition, and its refusals become TinysenseErrors."""
    import sys
    import types

    from tinysense.errors import TinysenseError
    from tinysense.flash.romfs import _mpremote_romfs_deploy

    device = FakeRomPartition(64 * 1024)
    monkeypatch.setitem(sys.modules, "vfs", types.SimpleNamespace(
        rom_ioctl=device.rom_ioctl, umount=device.umount))
    image, _ = build_romfs("xtensawin", [], src=firmware, build_dir=tmp_path / "build")
    node = types.SimpleNamespace(transport=FakeTransport(),
                                 target=Target("board", "/dev/ttyUSB0", "test"))
    _mpremote_romfs_deploy(node, image)
    assert bytes(device.part[:len(image)]) == image and device.finished
    small = FakeRomPartition(len(image) // 2)
    monkeypatch.setitem(sys.modules, "vfs", types.SimpleNamespace(
        rom_ioctl=small.rom_ioctl, umount=small.umount))
    node.transport = FakeTransport()
    with pytest.raises(TinysenseError, match="mpremote romfs deploy failed"):
        _mpremote_romfs_deploy(node, image)
