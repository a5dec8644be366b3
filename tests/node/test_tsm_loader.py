"""The node reads the golden .tsm exactly, and rejects corrupt or truncated packages."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import micropython_env
from engine_helpers import REPO, micropython_exe

pytestmark = pytest.mark.node
GOLDEN = REPO / "tests" / "vectors" / "tsm"
SCRIPT = Path(__file__).resolve().parent / "engine_mp" / "load_check.py"


def _load(tmp_path, data: bytes, *inputs: str, stream: bool = False) -> list[str]:
    f = tmp_path / "m.tsm"
    f.write_bytes(data)
    env = micropython_env(str(REPO / "firmware"))
    arg = f"stream:{f}" if stream else str(f)
    proc = subprocess.run([micropython_exe(), "-X", "heapsize=256K", str(SCRIPT), arg,
                           *inputs], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr   # never a crash
    return proc.stdout.strip().split("\n")


@pytest.mark.parametrize("stream", [False, True], ids=["ram", "stream"])
def test_golden_package_outputs(tmp_path, stream):
    meta = json.loads((GOLDEN / "hello_world.json").read_text())
    lines = _load(tmp_path, (GOLDEN / "hello_world.tsm").read_bytes(),
                  *[v["input"] for v in meta["vectors"]], stream=stream)
    assert lines[0] == "ok"
    assert lines[1:] == [v["output"] for v in meta["vectors"]]


@pytest.mark.parametrize("stream", [False, True], ids=["ram", "stream"])
def test_golden_svdf_package_outputs_in_a_row(tmp_path, stream):
    """svdf.tsm: the state carried from one inference to the next, as svdf.json's outputs."""
    meta = json.loads((GOLDEN / "svdf.json").read_text())
    lines = _load(tmp_path, (GOLDEN / "svdf.tsm").read_bytes(),
                  *[v["input"] for v in meta["vectors"]], stream=stream)
    assert lines == ["ok"] + [v["output"] for v in meta["vectors"]]


@pytest.mark.parametrize("stream", [False, True], ids=["ram", "stream"])
def test_golden_int16_ends_package_outputs(tmp_path, stream):
    """int16_ends.tsm: int16 input bytes in, int32 output bytes out, as int16_ends.json."""
    meta = json.loads((GOLDEN / "int16_ends.json").read_text())
    lines = _load(tmp_path, (GOLDEN / "int16_ends.tsm").read_bytes(),
                  *[v["input"] for v in meta["vectors"]], stream=stream)
    assert lines == ["ok"] + [v["output"] for v in meta["vectors"]]


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x01
    return bytes(b)


GOOD = (GOLDEN / "hello_world.tsm").read_bytes()


@pytest.mark.parametrize("data, words", [
    (GOOD[:40], "too short"),
    (GOOD[:-1], "truncated"),
    (GOOD + b"\0", "truncated"),
    (b"XSMP" + GOOD[4:], "bad magic"),
    (GOOD[:4] + b"\x01" + GOOD[5:], "version 1"),
    (_flip(GOOD, 200), "CRC"),
    (_flip(GOOD, len(GOOD) - 1), "CRC"),
    (GOOD[:32] + struct.pack("<I", 65) + GOOD[36:], "offsets"),
], ids=["short", "truncated", "padded", "magic", "version", "crc-tables", "crc-consts",
        "offsets"])
@pytest.mark.parametrize("stream", [False, True], ids=["ram", "stream"])
def test_corrupt_package_is_rejected(tmp_path, data, words, stream):
    lines = _load(tmp_path, data, stream=stream)
    assert lines[0].startswith("ValueError tsm:"), lines
    if not stream or words not in ("too short", "truncated"):
        assert words in lines[0], lines


def test_random_corruption_is_always_refused(tmp_path):
    f = tmp_path / "m.tsm"
    f.write_bytes(GOOD)
    env = micropython_env(str(REPO / "firmware"))
    proc = subprocess.run([micropython_exe(), "-X", "heapsize=1M",
                           str(SCRIPT.with_name("fuzz_load.py")), str(f)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["ValueError", "tsm", "200"], proc.stdout


def _fuzz(tmp_path, data: bytes, *mode: str) -> dict[str, int]:
    """fuzz_every.py's outcome counts for `data` (all its cases in one MicroPython process)."""
    from tinysense.formats.tsm import CRC_SPAN
    f = tmp_path / "m.tsm"
    f.write_bytes(data)
    env = micropython_env(str(REPO / "firmware"))
    proc = subprocess.run([micropython_exe(), "-X", "heapsize=1M",
                           str(SCRIPT.with_name("fuzz_every.py")), str(f),
                           *map(str, CRC_SPAN), *mode], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr   # never a crash
    kinds = {}
    for line in proc.stdout.splitlines():
        *k, n = line.rsplit(" ", 1)
        kinds[k[0]] = int(n)
    return kinds


def _activity() -> bytes:
    from tinysense.convert import convert_model
    return convert_model(REPO / "models" / "activity" / "model.tflite").package


@pytest.mark.parametrize("stream", [False, True], ids=["ram", "stream"])
@pytest.mark.parametrize("which", ["hello_world", "activity"])
def test_every_truncation_and_byte_flip_is_one_error(tmp_path, which, stream):
    """Every truncation, every one-byte flip (two per byte), and every flip with the CRC
    recomputed (a crafted package): ValueError("tsm: ...") or a package that loads and runs,
    never a crash or another error type. Streaming flips the tables (before const_off)."""
    data = GOOD if which == "hello_world" else _activity()
    kinds = _fuzz(tmp_path, data, *(["stream"] if stream else []))
    n = len(data)
    const_off = struct.unpack_from("<I", data, 44)[0]
    flips = 2 * (const_off if stream else n)
    assert kinds.pop("original accepted") == 1
    assert kinds.pop("truncated ValueError-tsm") == n
    assert kinds.pop("padded ValueError-tsm") == 1
    assert kinds.pop("flipped ValueError-tsm") == flips   # the CRC covers every byte
    resealed = kinds.pop("resealed ValueError-tsm") + kinds.pop("resealed accepted", 0)
    # a crafted scratch_size within the 16 MiB cap but above this heap: MemoryError when the
    # engine allocates it (no crash); the only case that is not ValueError
    scratch = [k for k in kinds if k.startswith("resealed-scratch ")]
    assert all(k.split()[1] in ("ValueError-tsm", "accepted") or k.startswith(
        "resealed-scratch MemoryError") for k in scratch), scratch
    resealed += sum(kinds.pop(k) for k in scratch)
    assert resealed == flips - 2 * 4                      # the CRC's own bytes are skipped
    assert kinds == {}, kinds


def test_crafted_arena_size_is_refused(tmp_path):
    """The issue's crash: arena_size zeroed (CRC recomputed, as a crafter would)."""
    from tinysense.convert.writer import seal
    for data in (GOOD, _activity()):
        b = bytearray(data)
        b[24:28] = bytes(4)
        lines = _load(tmp_path, bytes(b))
        assert lines[0].startswith("ValueError tsm: CRC mismatch"), lines   # unsealed
        for stream in (False, True):
            lines = _load(tmp_path, seal(b), stream=stream)
            assert lines[0].startswith("ValueError tsm: arena_size 0 does not match"), lines


def test_old_version_asks_to_reconvert(tmp_path):
    lines = _load(tmp_path, GOOD[:4] + b"\x02" + GOOD[5:])
    assert lines[0].startswith("ValueError tsm: version 2 not supported"), lines
    assert "reconvert" in lines[0]


def _with_tensor_flags(data: bytes, i: int, flags: int) -> bytes:
    """`data` with tensor i's flags byte set, the CRC recomputed (tables: docs/formats/tsm.md)."""
    from tinysense.convert.writer import seal

    b = bytearray(data)
    b[64 + 36 * i + 2] = flags
    return seal(b)


@pytest.mark.parametrize("flags, dtype, ok", [
    (32, None, True), (32 | 4, None, False), (32 | 1, None, False), (32, 2, False),
    (64, None, False)], ids=["state", "state-output", "state-const", "state-int32", "bit6"])
def test_state_flag_is_checked(tmp_path, flags, dtype, ok):
    """A STATE tensor must be an int8/int16 arena tensor, not an input, output or constant;
    unknown flag bits are refused. One ValueError("tsm: ...") line each, never a crash."""
    from tinysense.convert import convert_model

    pkg = convert_model(REPO / "tests" / "ops" / "svdf_rank1.tflite").package
    n = struct.unpack_from("<H", pkg, 16)[0]
    rows = [struct.unpack_from("<BBBB", pkg, 64 + 36 * i) for i in range(n)]
    i = next(k for k, r in enumerate(rows) if r[2] & 32)
    data = _with_tensor_flags(pkg, i, flags)
    if dtype is not None:
        b = bytearray(data)
        b[64 + 36 * i] = dtype
        data = _with_tensor_flags(bytes(b), i, flags)
    lines = _load(tmp_path, data)
    assert (lines[0] == "ok") == ok, lines
    if not ok:
        assert lines[0].startswith("ValueError tsm:") and len(lines[0]) < 120, lines
