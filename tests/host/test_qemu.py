"""The QEMU target: command line per chip, merged flash image, and start-up failures."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from esp_images import make_firmware
from esptool.bin_image import LoadFirmwareImage
from esptool.targets import CHIP_DEFS

from tinysense.boards import load_board
from tinysense.cli import main
from tinysense.errors import TinysenseError
from tinysense.targets.qemu import (QEMU_MACHINES, QemuNode, build_flash_image, qemu_command,
                            wait_for_prompt)
from tinysense.targets.qemu.runner import free_tcp_port


def esp_image(chip: str) -> bytes:
    """A MicroPython-shaped firmware (bootloader, partition table, app) made by esptool's
    own image writer (tests/host/esp_images.py)."""
    return make_firmware(chip)


@pytest.mark.parametrize("board,binary,machine,extra", [
    ("ESP32_GENERIC", "qemu-system-xtensa", "esp32",
     ["-global", "driver=timer.esp32.timg,property=wdt_disable,value=true"]),
    ("ESP32_GENERIC_S3", "qemu-system-xtensa", "esp32s3",
     ["-global", "driver=timer.esp32c3.timg,property=wdt_disable,value=true", "-m", "8M"]),
    ("ESP32_GENERIC_C3", "qemu-system-riscv32", "esp32c3",
     ["-icount", "3", "-global", "driver=timer.esp32c3.timg,property=wdt_disable,value=true"]),
])
def test_command_line_per_chip(board, binary, machine, extra):
    cmd = qemu_command(load_board(board), "/tmp/f.bin", 5555)
    assert cmd == [binary, "-nographic", "-machine", machine, *extra,
                   "-drive", "file=/tmp/f.bin,if=mtd,format=raw",
                   "-serial", "tcp:127.0.0.1:5555,server,nowait", "-monitor", "none"]


def test_every_chip_with_a_board_has_a_machine():
    chips = {load_board(name).chip for name in ("ESP32_GENERIC", "ESP32_GENERIC_S3",
                                                "ESP32_GENERIC_C3")}
    assert chips == set(QEMU_MACHINES)


def test_virtual_board_has_no_qemu_machine():
    with pytest.raises(TinysenseError, match="no Espressif QEMU machine"):
        qemu_command(load_board("VIRTUAL"), "f.bin", 1)


@pytest.mark.parametrize("board", ["ESP32_GENERIC", "ESP32_GENERIC_S3", "ESP32_GENERIC_C3"])
def test_merged_image_layout(tmp_path, board):
    cfg = load_board(board)
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(esp_image(cfg.chip))
    out = build_flash_image(cfg, firmware, tmp_path / "flash.bin")
    data = out.read_bytes()
    fw = firmware.read_bytes()
    assert len(data) == cfg.flash_bytes
    assert data[:cfg.firmware_offset] == b"\xff" * cfg.firmware_offset
    assert data[cfg.firmware_offset:cfg.firmware_offset + len(fw)] == fw
    assert set(data[cfg.firmware_offset + len(fw):]) == {0xFF}
    loaded = LoadFirmwareImage(cfg.chip, data[cfg.firmware_offset:])
    assert loaded.chip_id == CHIP_DEFS[cfg.chip].IMAGE_CHIP_ID


def test_image_for_another_chip_is_refused(tmp_path):
    firmware = tmp_path / "c3.bin"
    firmware.write_bytes(esp_image("esp32c3"))
    with pytest.raises(TinysenseError, match="built for esp32c3 but the board has an esp32"):
        build_flash_image(load_board("ESP32_GENERIC"), firmware, tmp_path / "flash.bin")
    assert not (tmp_path / "flash.bin").exists()


def test_not_an_image_is_refused(tmp_path):
    firmware = tmp_path / "junk.bin"
    firmware.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(TinysenseError, match="not an ESP firmware image"):
        build_flash_image(load_board("ESP32_GENERIC"), firmware, tmp_path / "flash.bin")


def test_missing_qemu_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("IDF_TOOLS_PATH", str(tmp_path))
    monkeypatch.delenv("TINYSENSE_QEMU_DIR", raising=False)
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(esp_image("esp32"))
    assert main(["qemu", "start", "--board", "ESP32_GENERIC", "--firmware", str(firmware)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "qemu-system-xtensa not found" in err[0]
    assert "idf_tools.py install qemu-xtensa qemu-riscv32" in err[0]


def test_qemu_that_dies_is_reported_with_its_log(tmp_path):
    fake = tmp_path / "qemu-system-xtensa"
    fake.write_text("#!/bin/sh\necho 'qemu: could not load flash' >&2\nexit 3\n")
    fake.chmod(0o755)
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(esp_image("esp32"))
    node = QemuNode("ESP32_GENERIC", firmware, workdir=tmp_path / "q", executable=fake)
    with pytest.raises(TinysenseError, match="QEMU exited with status 3.*could not load flash"):
        node.start(timeout=20)
    assert node.process is None
    assert (tmp_path / "q" / "flash.bin").stat().st_size == 4 << 20


@pytest.fixture
def virtual_tcp(tmp_path):
    """A real virtual board (the unix port behind its supervisor) with its REPL on TCP."""
    from tinysense.targets.virtual import start_board, stop_board

    vb = start_board("ESP32_GENERIC", tcp=0, directory=tmp_path / "vb", parent_bound=True)
    yield vb
    stop_board("ESP32_GENERIC", directory=tmp_path / "vb")


def test_wait_for_prompt_on_the_virtual_boards_tcp_port(virtual_tcp, tmp_path):
    log = tmp_path / "console.log"
    text = wait_for_prompt(virtual_tcp.tcp_url, 20, log=log)
    assert text.endswith(">>> ")
    assert log.read_bytes().endswith(b">>> ")


def test_socket_transport_runs_code_on_the_virtual_board(virtual_tcp):
    from mpremote.transport_serial import SerialTransport

    wait_for_prompt(virtual_tcp.tcp_url, 20)
    transport = SerialTransport(virtual_tcp.tcp_url)
    try:
        transport.enter_raw_repl(soft_reset=False)
        assert transport.exec("import sys; print(sys.implementation.name, 6 * 7)") == \
            b"micropython 42\r\n"
        transport.exit_raw_repl()
    finally:
        transport.close()


def test_wait_for_prompt_times_out_quoting_what_it_got():
    with socket.socket() as server:  # accepts the connection, says something, never prompts
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def talk():
            conn, _ = server.accept()
            time.sleep(0.3)  # pyserial drops what arrives while it opens the socket
            conn.sendall(b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n")
            time.sleep(3)
            conn.close()

        thread = threading.Thread(target=talk, daemon=True)
        thread.start()
        with pytest.raises(TinysenseError, match=r"no MicroPython prompt .* within 2 s; "
                                                 r"received: .*POWERON_RESET"):
            wait_for_prompt(f"socket://127.0.0.1:{port}", 2)


def test_wait_for_prompt_with_nothing_listening():
    port = free_tcp_port()
    with pytest.raises(TinysenseError, match="nothing received"):
        wait_for_prompt(f"socket://127.0.0.1:{port}", 1)


def test_qemu_node_lifecycle_with_the_stand_in(tmp_path):
    """QemuNode end to end: builds the image, starts 'QEMU' (the stand-in: a real MicroPython
    REPL behind the TCP port, not an emulator), waits for the prompt, runs code over the
    socket, stops, and leaves nothing listening."""
    from mpremote.transport_serial import SerialTransport
    from qemu_standin import install

    exe = install(tmp_path / "bin") / "qemu-system-xtensa"
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(esp_image("esp32"))
    node = QemuNode("ESP32_GENERIC", firmware, workdir=tmp_path / "q", executable=exe)
    with node:
        assert node.url.startswith("socket://127.0.0.1:")
        argv = json.loads((tmp_path / "q" / "argv.json").read_text())
        assert argv == qemu_command(load_board("ESP32_GENERIC"), node.flash_image,
                                    node.tcp_port, "qemu-system-xtensa")
        assert (tmp_path / "q" / "console.log").read_bytes().endswith(b">>> ")
        transport = SerialTransport(node.url)
        try:
            transport.enter_raw_repl(soft_reset=False)
            assert transport.exec("print(6 * 7)") == b"42\r\n"
        finally:
            transport.close()
        proc = node.process
    assert node.process is None and proc.poll() is not None
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", node.tcp_port))


def test_qemu_start_cli_runs_until_interrupted(tmp_path):
    """`tinysense qemu start` (with the stand-in QEMU) says where the REPL is, serves it, and
    stops QEMU cleanly on SIGINT (Ctrl-C) and SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    from mpremote.transport_serial import SerialTransport
    from qemu_standin import install

    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(esp_image("esp32"))
    env = {**os.environ, "TINYSENSE_QEMU_DIR": str(install(tmp_path / "bin")),
           "TINYSENSE_HOME": str(tmp_path / "home")}
    for sig in (signal.SIGINT, signal.SIGTERM):
        port = free_tcp_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tinysense", "qemu", "start", "--board", "ESP32_GENERIC",
             "--firmware", str(firmware), "--tcp", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            lines = [proc.stdout.readline() for _ in range(2)]
            assert lines[1].startswith(f"QEMU ESP32_GENERIC ready: REPL on "
                                       f"socket://127.0.0.1:{port}"), lines
            transport = SerialTransport(f"socket://127.0.0.1:{port}")
            transport.enter_raw_repl(soft_reset=False)
            assert transport.exec("print('cli')") == b"cli\r\n"
            transport.close()
            proc.send_signal(sig)
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0 and "stopping QEMU" in out
        with socket.socket() as sock:  # QEMU (the stand-in) is gone: the port is free
            sock.bind(("127.0.0.1", port))
