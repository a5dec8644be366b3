"""tsnode.supervise on the unix port: crash -> log + soft reset, crash-loop guard, Ctrl-C."""

from __future__ import annotations

import pytest
from conftest import run_micropython

pytestmark = pytest.mark.node

# The node's "/" is a scratch directory, as on the virtual board (tsnode.supervise is
# imported from firmware/ first: after the remount, absolute paths lead into the scratch).
PRELUDE = """
import sys, vfs, os
from tsnode import supervise
vfs.umount('/')
vfs.mount(vfs.VfsPosix({root!r}), '/')
os.chdir('/')
resets = []
def reset():
    resets.append(1)
def crash():
    raise ValueError('boom in the app loop')
"""


def run(tmp_path, body: str) -> str:
    return run_micropython(PRELUDE.format(root=str(tmp_path)) + body, heap="256K")


def test_crash_is_logged_counted_and_resets(tmp_path):
    out = run(tmp_path, """
supervise.run(crash, reset)
print('resets', len(resets), 'in a row', supervise.crashes_in_a_row())
supervise.run(crash, reset)
print('resets', len(resets), 'in a row', supervise.crashes_in_a_row())
""")
    assert "ValueError: boom in the app loop" in out
    assert "supervise: app crashed (1 in a row); soft reset" in out
    assert "resets 1 in a row 1" in out and "resets 2 in a row 2" in out
    log = (tmp_path / "crash.log").read_text()
    assert log.count("ValueError: boom in the app loop") == 2
    assert "--- crash 2 in a row" in log


def test_crash_loop_stays_in_the_repl_and_rearms(tmp_path):
    out = run(tmp_path, """
for _ in range(3):
    supervise.run(crash, reset)
print('resets', len(resets), 'in a row', supervise.crashes_in_a_row())
""")
    assert "app crashed 3 times in a row; staying in the REPL" in out
    assert "resets 2 in a row 0" in out  # the third crash did not reset; next boot retries
    assert not (tmp_path / "crash.state").exists()


def test_clean_exit_and_ctrl_c(tmp_path):
    (tmp_path / "crash.state").write_text("2")
    out = run(tmp_path, """
def stop():
    raise KeyboardInterrupt
supervise.run(stop, reset)
print('after ctrl-c', supervise.crashes_in_a_row(), len(resets))
supervise.run(lambda: None, reset)
print('after clean exit', supervise.crashes_in_a_row())
""")
    assert "supervise: app stopped (Ctrl-C); REPL" in out
    assert "after ctrl-c 2 0" in out and "after clean exit 0" in out


def test_crash_log_is_bounded(tmp_path):
    run(tmp_path, """
for _ in range(60):
    supervise.run(crash, reset)
""")
    log = (tmp_path / "crash.log").read_text()
    assert len(log) <= 4096 and log.rstrip().endswith("boom in the app loop")


def test_app_module_override(tmp_path):
    out = run(tmp_path, """
print(supervise.app_module())
open('/app.txt', 'w').write('hil_app\\n')
print(supervise.app_module())
""")
    assert out.split() == ["tsnode.app", "hil_app"]
