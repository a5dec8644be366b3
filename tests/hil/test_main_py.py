"""firmware/main.py on a private virtual board: starts tsnode.app unless /noapp, else the REPL."""

from __future__ import annotations

import shutil
import time

import pytest
import serial

from tinysense.paths import FIRMWARE_DIR
from tinysense.targets.virtual import start_board, stop_board

pytestmark = pytest.mark.hil


@pytest.fixture
def flash(tmp_path):
    directory = tmp_path / "vb"
    (directory / "flash" / "tsnode").mkdir(parents=True)
    shutil.copy(FIRMWARE_DIR / "main.py", directory / "flash" / "main.py")
    shutil.copy(FIRMWARE_DIR / "tsnode" / "supervise.py", directory / "flash" / "tsnode")
    (directory / "flash" / "tsnode" / "__init__.py").write_text("")
    vb = start_board("ESP32_GENERIC", directory=directory, parent_bound=True)
    port = serial.serial_for_url(vb.url, timeout=0.05)
    port.write(b"\r\x03\x02")
    time.sleep(0.3)
    port.read(65536)

    def soft_reset() -> str:
        """Ctrl-D at the friendly REPL; returns what the board printed up to its prompt."""
        port.write(b"\x04")
        seen, deadline = b"", time.monotonic() + 15
        while not seen.endswith(b">>> ") and time.monotonic() < deadline:
            seen += port.read(4096)
        assert seen.endswith(b">>> "), seen
        return seen.decode(errors="replace")

    yield directory / "flash", soft_reset
    port.close()
    stop_board("ESP32_GENERIC", directory)


def test_main_py_starts_the_app_or_says_why_not(flash):
    root, soft_reset = flash
    assert "main.py: no tsnode.app deployed; REPL" in soft_reset()
    (root / "tsnode" / "app.py").write_text("def main():\n    print('APP MAIN RAN')\n")
    assert "APP MAIN RAN" in soft_reset()
    (root / "noapp").write_text("")
    out = soft_reset()
    assert "main.py: /noapp exists, not starting the app" in out and "APP MAIN RAN" not in out
    (root / "noapp").unlink()
    (root / "tsnode" / "app.py").write_text("import no_such_module\ndef main():\n    pass\n")
    out = soft_reset()
    assert "ImportError" in out and "main.py: tsnode.app failed to import; REPL" in out
    # (a crashing app is tests/hil/test_watchdog.py's subject)
