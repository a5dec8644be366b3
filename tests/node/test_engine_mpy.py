"""The engine compiles with mpy-cross for every board arch (viper code must not use int
literals >= 2^30, which are not small ints on 32-bit ports), and the native .mpy build of each
unix port (x86: the 32-bit build of `make nodes`; x64: the 64-bit PyPI one) equals tflite-micro
like the source does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import UNIX_KINDS
from engine_helpers import REPO, compare_model

pytestmark = pytest.mark.node
ENGINE = sorted((REPO / "firmware" / "tsnode" / "engine").glob("*.py")) + \
    [REPO / "firmware" / "tsnode" / "agent.py"]


def _mpy_cross(arch: str, src: Path, out: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mpy_cross", f"-march={arch}", "-o", str(out),
                           str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, f"{src.name} for {arch}: {proc.stderr}"


@pytest.mark.parametrize("arch", ["xtensawin", "rv32imc", "x86", "x64"])
def test_engine_compiles_for_arch(arch, tmp_path):
    for src in ENGINE:
        _mpy_cross(arch, src, tmp_path / (src.stem + ".mpy"))


@pytest.mark.parametrize("kind", UNIX_KINDS)
def test_native_mpy_build_is_bit_exact(kind, tmp_path):
    pkg = tmp_path / "tsnode"
    (pkg / "engine").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for src in ENGINE:
        dst = pkg / ("engine" if src.parent.name == "engine" else "") / (src.stem + ".mpy")
        _mpy_cross(kind, src, dst)
    for name in ("tflm_micro_speech_quantized", "mlperf_kws_ref_model"):
        mismatches, alloc, n = compare_model(REPO / "tests" / "conformance" / f"{name}.tflite",
                                             n_random=1, mp_path=str(tmp_path), kind=kind)
        assert not mismatches and alloc == 0, (name, mismatches[:1])
