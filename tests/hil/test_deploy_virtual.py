"""Deploy end to end on a private virtual board: only changed files move, stale ones go."""

from __future__ import annotations

import pytest

from conftest import virtual_node_arch
from tinysense.node.deploy import deploy
from tinysense.node import open_node
from tinysense.targets import Target
from tinysense.targets.virtual import start_board, stop_board

pytestmark = pytest.mark.hil


@pytest.fixture
def vnode(tmp_path):
    vb = start_board("ESP32_GENERIC", directory=tmp_path / "vb", parent_bound=True)
    try:
        with open_node(Target("virtual", vb.url, "test"), "ESP32_GENERIC") as node:
            yield node
    finally:
        stop_board("ESP32_GENERIC", tmp_path / "vb")


def test_deploy_copies_only_changes(vnode, tmp_path):
    fw = tmp_path / "fw"
    (fw / "tsnode" / "sub").mkdir(parents=True)
    (fw / "main.py").write_text("print('main')\n")
    (fw / "tsnode" / "__init__.py").write_text("")
    (fw / "tsnode" / "a.py").write_text("A = 1\n")
    (fw / "tsnode" / "sub" / "b.py").write_text(
        "@micropython.viper\ndef twice(x: int) -> int:\n    return x << 1\n")
    build = tmp_path / "build"

    def run():
        return deploy(vnode, src=fw, build_dir=build, progress=None, natmods=tmp_path / "nm")

    first = run()
    assert first.arch == virtual_node_arch()  # x86: the 32-bit build; x64: the fallback
    assert sorted(first.copied) == ["/main.py", "/tsnode/__init__.mpy", "/tsnode/a.mpy",
                                    "/tsnode/sub/b.mpy", "/tsnode_board.json"]
    assert vnode.exec("import tsnode.sub.b, tsnode.a\n"
                      "print(tsnode.sub.b.twice(21), tsnode.a.A)") == "42 1\n"
    assert run().copied == []
    (fw / "tsnode" / "a.py").write_text("A = 2\n")
    assert run().copied == ["/tsnode/a.mpy"]
    vnode.put(b"garbage", "/tsnode/sub/b.mpy")  # changed behind our back
    vnode.put(b"X = 1\n", "/tsnode/old.py")  # stale source that would shadow an .mpy
    (fw / "tsnode" / "sub" / "b.py").unlink()
    result = run()
    assert result.copied == [] and result.unchanged
    assert sorted(result.removed) == ["/tsnode/old.py", "/tsnode/sub/b.mpy"]
    (fw / "tsnode" / "sub" / "b.py").write_text("B = 3\n")
    assert run().copied == ["/tsnode/sub/b.mpy"]
    vnode.soft_reset()
    assert vnode.exec("import tsnode.a, tsnode.sub.b\nprint(tsnode.a.A, tsnode.sub.b.B)") \
        == "2 3\n"


def test_deploy_copies_the_native_module_for_the_nodes_arch(vnode, tmp_path):
    """build/natmod/<arch>/tsnn.mpy goes to /lib/tsnn.mpy (on sys.path) when built for the
    node's arch, by sha256 like the firmware; another arch's module is never copied."""
    from tinysense.node.deploy import NATMOD_DIR, NATMOD_REMOTE

    arch = virtual_node_arch()
    mpy = NATMOD_DIR / arch / "tsnn.mpy"
    if not mpy.is_file():
        pytest.skip(f"{mpy} not built (make natmods)")
    fw = tmp_path / "fw"
    (fw / "tsnode").mkdir(parents=True)
    (fw / "tsnode" / "__init__.py").write_text("")
    nm = tmp_path / "nm"
    other = "x64" if arch == "x86" else "x86"
    (nm / other).mkdir(parents=True)
    (nm / other / "tsnn.mpy").write_bytes(b"M\x06wrong arch")

    def run():
        return deploy(vnode, src=fw, build_dir=tmp_path / "build", progress=None, natmods=nm)

    assert NATMOD_REMOTE not in run().copied   # no module for this arch: none
    assert vnode.sha256(NATMOD_REMOTE) is None
    (nm / arch).mkdir()
    (nm / arch / "tsnn.mpy").write_bytes(mpy.read_bytes())
    assert run().copied == [NATMOD_REMOTE]
    assert NATMOD_REMOTE in run().unchanged
    assert vnode.exec("import tsnn\nprint(hasattr(tsnn, 'conv'), hasattr(tsnn, 'dwconv'))") \
        == "True True\n"


def test_deploy_cli_to_a_virtual_board_by_url(tmp_path):
    import subprocess
    import sys

    vb = start_board("ESP32_GENERIC", tcp=0, directory=tmp_path / "vb", parent_bound=True)
    try:
        for url, copied in ((vb.tcp_url, None), (vb.url, " 0 copied")):
            proc = subprocess.run([sys.executable, "-m", "tinysense", "deploy", "--target", url,
                                   "--board", "ESP32_GENERIC"], capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, proc.stderr
            # a unix-port node, whatever --board says
            assert f"deployed for {virtual_node_arch()}:" in proc.stdout
            if copied:
                assert copied in proc.stdout
        assert '"target":"virtual"' in (vb.flash_dir / "tsnode_board.json").read_text()
    finally:
        stop_board("ESP32_GENERIC", tmp_path / "vb")


def test_deploy_puts_a_model_its_meta_and_app_json_without_romfs(tmp_path):
    """`deploy --model --meta --app` (no --romfs) on a board's filesystem: the .tflite is
    converted for the board, the meta slimmed to what the node reads, app.json copied; the
    node's own config loader and engine then find and load them. Bad input is one line."""
    import json
    import shutil
    import subprocess
    import sys

    from tinysense.paths import MODELS_DIR

    model = tmp_path / "activity.tflite"
    shutil.copy(MODELS_DIR / "activity" / "model.tflite", model)
    app = tmp_path / "app.json"
    app.write_text(json.dumps({"mode": "eval", "heartbeat_s": 5}))
    vb = start_board("ESP32_GENERIC", directory=tmp_path / "vb", parent_bound=True)
    cli = [sys.executable, "-m", "tinysense", "deploy", "--target", vb.url, "--board",
           "ESP32_GENERIC"]
    try:
        proc = subprocess.run(cli + ["--model", str(model), "--meta",
                                     str(MODELS_DIR / "activity" / "meta.json"),
                                     "--app", str(app)],
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        assert "app files: 3 copied to the filesystem" in proc.stdout
        flash = vb.flash_dir
        assert (flash / "models" / "activity.tsm").read_bytes()[:4] == b"TSMP"
        meta = json.loads((flash / "models" / "activity.json").read_text())
        full = json.loads((MODELS_DIR / "activity" / "meta.json").read_text())
        assert meta["labels"] == full["labels"] and len(json.dumps(meta)) < len(json.dumps(full))
        with open_node(Target("virtual", vb.url, "test"), "ESP32_GENERIC") as node:
            out = node.exec(
                "import json\nfrom tsnode import config\nc = config.load('/app.json')\n"
                "from tsnode.engine.model import Model\n"
                "m = Model(open(c['model'], 'rb').read())\n"
                "print(c['mode'], c['model'], len(m.plan), json.load(open(c['meta']))['labels'])",
                timeout=60)
        mode, path, n_ops, labels = out.split(" ", 3)
        assert (mode, path) == ("eval", "/models/activity.tsm") and int(n_ops) > 0
        assert labels.strip() == repr(full["labels"]).replace('"', "'")
        assert "registry: not updated (the node is not provisioned" in proc.stdout
        # provisioned, with its gateway database: the registry learns the model's labels
        from tinysense.gateway.registry import read_models
        from tinysense.gateway.store import open_db
        from tinysense.provision import provision

        db = tmp_path / "gateway.db"
        with open_node(Target("virtual", vb.url, "test"), "ESP32_GENERIC") as node:
            provision(node, 0x42, db=db, transport="udp", gateway="127.0.0.1:47800")
        (tmp_path / "app2.json").write_text(json.dumps({"model_id": 3}))
        proc = subprocess.run(cli + ["--model", str(model), "--meta",
                                     str(MODELS_DIR / "activity" / "meta.json"), "--app",
                                     str(tmp_path / "app2.json"), "--db", str(db)],
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        assert "registry: device 0x00000042 runs activity as model 3 (labels: " \
            f"{', '.join(full['labels'])})" in proc.stdout
        models = read_models(open_db(db))
        assert [(m.device_id, m.model_id, m.labels) for m in models] == \
            [(0x42, 3, tuple(full["labels"]))]
        for bad, msg in ((["--model", str(tmp_path / "none.tsm")], "no such file"),
                         (["--model", str(model), "--meta", str(app)], "not a model meta.json"),
                         (["--meta", str(app)], "give one meta per model")):
            proc = subprocess.run(cli + bad, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 1 and msg in proc.stderr, proc.stderr
            assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    finally:
        stop_board("ESP32_GENERIC", tmp_path / "vb")
