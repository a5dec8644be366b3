"""tsnode.agent on the unix port: the one-line JSON/hex API the host uses (docs/engine.md),
from a RAM-loaded package and zero-copy from a ROMFS image; intermediate tensors equal the
reference interpreter's (kPreserveAllTensors)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from conftest import run_micropython
from engine_helpers import REPO
from tinysense.convert import convert_model, write_package

pytestmark = pytest.mark.node
KWS = REPO / "tests" / "conformance" / "mlperf_kws_ref_model.tflite"


def _reference(x):
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_file(
        str(KWS), intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    it.set_input(x, 0)
    it.invoke()
    return it


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    d = tmp_path_factory.mktemp("agent")
    result = convert_model(KWS)
    write_package(result, d / "m.tsm")
    from mpremote.romfs import make_romfs
    (d / "rom").mkdir()
    write_package(result, d / "rom" / "m.tsm")
    with contextlib.redirect_stdout(io.StringIO()):
        (d / "rom.img").write_bytes(make_romfs(str(d / "rom"), mpy_cross=False))
    return d, result


@pytest.mark.parametrize("where", ["ram", "romfs", "stream"])
def test_agent_api(kws, where):
    d, result = kws
    x = np.random.default_rng(5).integers(-128, 128, (1, 49, 10, 1)).astype(np.int8)
    mount = "" if where == "ram" else (
        "import vfs\nvfs.mount(vfs.VfsRom(memoryview(open(%r, 'rb').read())), '/rom')\n"
        % str(d / "rom.img"))
    path = "/rom/m.tsm" if where == "romfs" else str(d / "m.tsm")
    load = f"agent.load({path!r}, stream=True)" if where == "stream" else \
        f"agent.load({path!r})"
    # an intermediate activation (operator 3's output, read after running up to op 3), and
    # the input as set (stop=-1 runs no op; later ops may reuse the input's memory)
    from tinysense.convert.reader import read_model
    mid = read_model(KWS).operators[3].outputs[0]
    script = (f"{mount}from tsnode import agent\n{load}\n"
              f"agent.infer_hex({x.tobytes().hex()!r})\nagent.bench(5)\nagent.heap()\n"
              f"agent.infer_hex({x.tobytes().hex()!r}, stop=3) and None\n"
              f"agent.tensor_hex({mid})\n"
              f"agent.infer_hex({x.tobytes().hex()!r}, stop=-1) and None\n"
              "agent.tensor_hex(0)\nagent.info()\n")
    lines = run_micropython(script, heap="256K").strip().split("\n")
    del lines[6]                     # the stale outputs of the partial runs
    del lines[4]
    assert len(lines) == 7, lines
    info, out, bench, heap = (json.loads(lines[0]), lines[1], json.loads(lines[2]),
                              json.loads(lines[3]))
    ref = _reference(x)
    assert out == ref.get_output(0).tobytes().hex()
    assert bytes.fromhex(lines[4]) == ref.GetTensor(mid, 0)["tensor_data"].tobytes()
    assert bytes.fromhex(lines[5]) == x.tobytes()
    assert json.loads(lines[6]) == info
    assert info["ok"] and info["ops"] == 12 and info["inputs"][0]["nbytes"] == 490
    assert info["outputs"] == [{"tensor": result.report.outputs[0]["tensor"], "shape": [1, 12],
                                "nbytes": 12, "zero_point": -128}]
    assert info["zero_copy"] is (where == "romfs") and info["placement"] == where
    assert bench["n"] == 5 and 0 < bench["min_ms"] <= bench["median_ms"] <= bench["max_ms"]
    assert bench["alloc_bytes"] == 0 and heap["inference_alloc_bytes"] == 0
    assert heap["arena_bytes"] >= result.report.arena_bytes
    assert heap["engine_bytes"] == heap["arena_bytes"] + heap["scratch_bytes"] + \
        heap["tables_bytes"]
    if where == "ram":
        assert heap["package_bytes"] >= len(result.package)
    else:
        assert heap["package_bytes"] == 0        # constants stay in the image / the file


def test_agent_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.tsm"
    bad.write_bytes(b"TSMP" + bytes(100))
    with pytest.raises(AssertionError) as exc:
        run_micropython(f"from tsnode import agent\nagent.load({str(bad)!r})\n")
    assert "ValueError: tsm:" in str(exc.value)
    with pytest.raises(AssertionError) as exc:
        run_micropython("from tsnode import agent\nagent.infer_hex('00')\n")
    assert "no model loaded" in str(exc.value)


def test_a_new_load_frees_the_old_model_first(kws):
    """On a heap with room for one kws model (RAM-loaded: package + arena) but not two, a
    second load (streamed) succeeds: the old model is released before the new one is built,
    and agent.unload() gives the heap back."""
    d, _ = kws
    path = str(d / "m.tsm")
    # 100 KiB of 32-bit words (twice the bytes on a 64-bit unix port, whose objects are larger)
    out = run_micropython(
        "import gc\nfrom tsnode import agent\n"
        f"x = agent.load({path!r}, stream=False)\nx = None\ngc.collect()\n"
        "held = gc.mem_alloc()\n"
        f"x = agent.load({path!r}, stream=True)\nx = None\n"
        f"x = agent.load({path!r}, stream=False)\nx = None\n"
        "x = agent.unload()\nx = None\nprint('freed', held - gc.mem_alloc())\n", heap="102400w")
    infos = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [i.get("placement") for i in infos] == ["ram", "stream", "ram", None]
    assert infos[-1]["ok"] and infos[-1]["mem_free"] > 34_880 + 16_000
    freed = int(out.split("freed")[1])
    assert freed >= 34_880 + 16_000       # at least the package and the arena


def test_agent_io_in_chunks(kws):
    """put_input / run / get_output: the input written into the arena in pieces (crossing no
    tensor edge here, but every chunk edge), the outputs read back in pieces; the same bytes
    as one infer_hex; out-of-range offsets are refused."""
    import base64
    d, _ = kws
    x = np.random.default_rng(9).integers(-128, 128, (1, 49, 10, 1)).astype(np.int8)
    raw = x.tobytes()
    puts = "".join(f"agent.put_input({at}, {base64.b64encode(raw[at:at + 200])!r})\n"
                   for at in range(0, len(raw), 200))
    script = (f"from tsnode import agent\nagent.load({str(d / 'm.tsm')!r})\n{puts}"
              "agent.run()\nagent.get_output(0, 5)\nagent.get_output(5, 7)\n"
              "try:\n agent.get_output(8, 5)\nexcept ValueError as e:\n print('refused', e)\n"
              f"try:\n agent.put_input(400, {base64.b64encode(bytes(120))!r})\n"
              "except ValueError as e:\n print('refused', e)\n"
              "agent.heap()\n")
    lines = run_micropython(script, heap="256K").strip().split("\n")
    assert [json.loads(ln)["at"] for ln in lines[1:4]] == [200, 400, 490]
    assert json.loads(lines[4]) == {"ok": True, "output_bytes": 12}
    got = base64.b64decode(lines[5]) + base64.b64decode(lines[6])
    assert got == _reference(x).get_output(0).tobytes()
    assert lines[7] == "refused bytes 8..13: the model has 12"
    assert lines[8] == "refused bytes 400..520: the model has 490"
    assert json.loads(lines[9])["inference_alloc_bytes"] == 0


def test_agent_reset_restores_the_state(tmp_path):
    """An SVDF model (tests/vectors/tsm/svdf.tsm): inferences carry its state, agent.reset()
    sets it back as a fresh load has it, so the same inputs give the same outputs again."""
    gold = REPO / "tests" / "vectors" / "tsm"
    meta = json.loads((gold / "svdf.json").read_text())
    infers = "".join(f"agent.infer_hex({v['input']!r})\n" for v in meta["vectors"])
    script = (f"from tsnode import agent\nx = agent.load({str(gold / 'svdf.tsm')!r})\n"
              f"{infers}agent.reset()\n{infers}")
    lines = run_micropython(script, heap="256K").strip().split("\n")
    want = [v["output"] for v in meta["vectors"]]
    n = len(want)
    assert lines[1:1 + n] == want and lines[2 + n:] == want, lines
    assert json.loads(lines[1 + n]) == {"ok": True, "state_bytes": 160}
