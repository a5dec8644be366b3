"""The tinysense pytest plugin, run as a user would: pytest in a fresh project directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from tinysense.boards import load_board
from tinysense.pytest_plugin import FEATURES, missing_needs
from tinysense.targets import detect_qemu, find_usb_boards


def run_pytest(tmp_path, test_source: str, *args: str, env: dict | None = None):
    """pytest on one test file in tmp_path (no repo conftest): the plugin comes from its
    pytest11 entry point alone."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(test_source))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TINYSENSE_")}
    full_env.update(env or {})
    full_env["TINYSENSE_HOME"] = str(tmp_path / "state")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs",
                           str(tmp_path / "test_inner.py"), *args],
                          cwd=tmp_path, env=full_env, capture_output=True, text=True,
                          timeout=180)


def header_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("tinysense target:"))


def test_default_target_is_virtual_and_shown_in_the_header(tmp_path):
    proc = run_pytest(tmp_path, "def test_x(target_option, board_option, target):\n"
                      "    assert (target_option, board_option) == ('virtual', 'ESP32_GENERIC')\n"
                      "    assert target.kind == 'virtual'\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert header_line(proc.stdout) == ("tinysense target: virtual (virtual board requested); "
                                        "board ESP32_GENERIC")


def test_environment_gives_the_defaults(tmp_path):
    proc = run_pytest(tmp_path, "def test_x(board_config):\n"
                      "    assert board_config.name == 'ESP32_GENERIC_C3'\n",
                      env={"TINYSENSE_BOARD": "ESP32_GENERIC_C3"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert header_line(proc.stdout).endswith("board ESP32_GENERIC_C3")


def test_auto_says_what_it_chose_and_why(tmp_path):
    proc = run_pytest(tmp_path, "def test_x(target):\n    print(target)\n", "--target", "auto")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = header_line(proc.stdout)
    cfg = load_board("ESP32_GENERIC")
    if not find_usb_boards(cfg) and not detect_qemu(cfg).usable:  # this machine, and CI
        assert line.startswith("tinysense target: virtual (no board on USB; ")
        assert line.endswith("; using virtual); board ESP32_GENERIC")
        assert detect_qemu(cfg).reason in line
    else:
        assert line.startswith(("tinysense target: board ", "tinysense target: qemu "))


def test_absent_port_fails_the_session_in_one_line(tmp_path):
    proc = run_pytest(tmp_path, "def test_x():\n    pass\n", "--target", "/dev/ttyUSB9")
    assert proc.returncode == 4  # pytest's usage error
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "passed" not in out
    errors = [line for line in out.splitlines() if line.strip()]
    assert errors == [errors[0]] and errors[0].startswith(
        "ERROR: tinysense: serial port /dev/ttyUSB9 does not exist")


def test_needs_marker_skips_with_the_reason(tmp_path):
    proc = run_pytest(tmp_path, """
        import pytest

        @pytest.mark.needs("wifi")
        def test_wifi():
            pass

        @pytest.mark.needs("network", heap=50_000)
        def test_network():
            pass

        @pytest.mark.needs(heap=10_000_000)
        def test_big_heap():
            pass

        @pytest.mark.needs("wfi")
        def test_typo():
            pass
        """)
    out = proc.stdout
    assert proc.returncode == 1, out
    # reported at the test's own line, not inside the plugin
    assert re.search(r"SKIPPED \[1\] test_inner.py:\d+: needs wifi \(WiFi\); target is "
                     r"virtual ESP32_GENERIC", out), out
    assert "needs heap >= 10,000,000 B (board budget 112,000 B)" in out
    assert "unknown need 'wfi'" in out
    assert "1 passed, 2 skipped, 1 error" in out


def test_missing_needs_table():
    esp32, s3 = load_board("ESP32_GENERIC"), load_board("ESP32_GENERIC_S3")
    assert missing_needs("board", esp32, ("wifi", "i2c_sensor", "hardware")) is None
    assert "i2c_sensor" in missing_needs("virtual", esp32, ("i2c_sensor",))
    assert "network" in missing_needs("qemu", esp32, ("network",))  # QEMU has no WiFi
    assert missing_needs("qemu", s3, ("psram",), heap=1_000_000) is None
    assert "psram" in missing_needs("virtual", esp32, ("psram",))
    with pytest.raises(ValueError, match="unknown need"):
        missing_needs("board", esp32, ("bluetooth",))
    assert {"wifi", "network", "i2c_sensor"} <= set(FEATURES)


def test_node_and_dut_fixtures_on_the_virtual_board(tmp_path):
    proc = run_pytest(tmp_path, """
        def test_exec(node):
            assert node.target.kind == "virtual"
            node.exec("import builtins; builtins.left_over = 1")

        def test_fresh_soft_reset_per_test(node):
            assert node.exec("import builtins; print(hasattr(builtins, 'left_over'))") \\
                == "False\\n"

        def test_expect(dut):
            dut.node.transport.exec_raw_no_follow("print('reading', 6 * 7)")
            assert dut.expect(r"reading (\\d+)", 5).group(1) == "42"

        def test_leaves_the_port_closed(node):
            node.transport.close()

        def test_next_test_gets_a_working_node(node):
            assert node.exec("print('back')") == "back\\n"

        def test_expect_fails_with_what_came(dut):
            dut.node.transport.exec_raw_no_follow("print('temperature 21.5')")
            dut.expect(r"humidity", 1)
        """, "--no-deploy")
    out = proc.stdout
    assert "1 failed, 5 passed" in out, out
    assert re.search(r"^tinysense node: MicroPython \d+\.\d+\.\d+ \(.*\) on \S+$", out, re.M)
    assert "ExpectTimeout: expected /humidity/ within 1 s; received" in out
    assert "temperature 21.5" in out
    log = next(line.split("full console log: ")[1] for line in out.splitlines()
               if "full console log: " in line)
    assert "temperature 21.5" in open(log).read()


def test_qemu_without_qemu_installed_is_one_line(tmp_path):
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"\xe9" + bytes(63))
    # PATH without /usr/bin: Debian's qemu-system-xtensa (no esp32 machine) may be there
    proc = run_pytest(tmp_path, "def test_x(node):\n    pass\n", "--target", "qemu",
                      "--firmware", str(firmware),
                      env={"PATH": os.path.dirname(sys.executable),
                           "IDF_TOOLS_PATH": str(tmp_path / "no-idf")})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4 and "Traceback" not in out, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "ERROR: tinysense: --target qemu: qemu-system-xtensa not found; install Espressif's "
        "QEMU and set TINYSENSE_FIRMWARE, or use --target virtual"), out
    # and why the RV32 QEMU board cannot stand in for an ESP32 (Xtensa) board
    assert "(RV32 QEMU: " in lines[0], out


def test_qemu_target_end_to_end_with_the_stand_in(tmp_path):
    """--target qemu --firmware F: resolved (QEMU found, has the machine), started with the
    board's flash image, node and dut fixtures working over socket://. The 'QEMU' is
    tests/host/qemu_standin.py: a real MicroPython REPL (x64), not an emulator, so deploy
    rightly refuses xtensawin code for it; the firmware-free fixtures run with --no-deploy."""
    from esp_images import make_firmware
    from qemu_standin import install

    env = {"TINYSENSE_QEMU_DIR": str(install(tmp_path / "bin"))}
    firmware = tmp_path / "ESP32_GENERIC.bin"
    firmware.write_bytes(make_firmware("esp32"))
    test = """
        def test_on_qemu(target, node, dut):
            assert target.kind == "qemu"
            assert node.target.url.startswith("socket://127.0.0.1:")
            assert node.exec("print(6 * 7)") == "42\\n"
            dut.node.transport.exec_raw_no_follow("print('over tcp')")
            dut.expect(r"over tcp", 5)
        """
    proc = run_pytest(tmp_path, test, "--target", "qemu", "--firmware", str(firmware),
                      "--no-deploy", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert header_line(proc.stdout) == (
        f"tinysense target: qemu (QEMU requested: qemu-system-xtensa -machine esp32 with "
        f"{firmware}); board ESP32_GENERIC")
    # with deploy: it reaches the node through QEMU's port, checks the node's architecture
    # and ends the session with one clear line
    proc = run_pytest(tmp_path, test, "--target", "qemu", "--firmware", str(firmware), env=env)
    assert proc.returncode == 3
    assert "tinysense: cannot use the qemu target: the node runs x64 code but board " \
        "ESP32_GENERIC says xtensawin" in proc.stdout


def test_another_plugins_target_option_leaves_us_the_long_names(tmp_path):
    """pytest-embedded registers `--target` (the chip): with such a plugin loaded, pytest must
    not die on a conflicting option; ours is then `--tinysense-target`, and the header says so."""
    (tmp_path / "embeddedlike.py").write_text(textwrap.dedent("""
        def pytest_addoption(parser):
            parser.getgroup("esp").addoption("--target", help="chip")
    """))
    env = {"PYTHONPATH": str(tmp_path)}
    body = ("def test_x(request, target):\n"
            "    assert request.config.getoption('--target') == 'esp32s3'\n"
            "    assert target.kind == 'virtual'\n")
    proc = run_pytest(tmp_path, body, "-p", "embeddedlike", "--target", "esp32s3",
                      "--tinysense-target", "virtual", "--tinysense-board", "ESP32_GENERIC",
                      env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "1 passed" in out, out
    assert "--target belongs to another plugin here; use --tinysense-target" in out, out
    # without the other plugin, both names work and mean the same
    proc = run_pytest(tmp_path, "def test_y(target):\n    assert target.kind == 'virtual'\n",
                      "--tinysense-target", "virtual")
    assert proc.returncode == 0, proc.stdout + proc.stderr
