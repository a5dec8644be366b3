"""A virtual ESP32 chip in download mode on a pty or TCP port, writing into a flash file.

`RomLoader(chip, flash_path, flash_size)` serves tinysense.flash.romproto.RomProtocol (the
ROM loader's side of esptool's serial protocol, and esptool's flasher stub once esptool
uploads it) in a thread: behind a pty by default (`.port` is its /dev/pts path; the loader
keeps the slave open so clients can come and go) or a TCP listener (`.port` is a socket://
URL, one client at a time). Real esptool with `--before no-reset` (`--no-stub` or not) can
detect the chip, write, verify, erase and read. While it runs, the loader registers its
port under STATE_DIR/romloader/ so `tinysense flash` knows not to toggle DTR/RTS.
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import tty
from pathlib import Path

from tinysense import paths
from tinysense.flash.romchips import rom_chip
from tinysense.flash.romproto import FlashFile, RomProtocol, SlipDecoder, slip_encode


def _registry_dir() -> Path:
    return paths.STATE_DIR / "romloader"


def virtual_rom_port(port: str) -> dict | None:
    """The record of a running virtual ROM loader serving `port`, or None.

    Each loader writes STATE_DIR/romloader/<pid>-<n>.json while it runs, so `tinysense flash`
    in another process knows the port is a virtual chip (which cannot run the flasher stub).
    """
    for path in sorted(_registry_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text())
            os.kill(record["pid"], 0)
        except (OSError, ValueError, KeyError):
            continue  # gone, or being written
        if record.get("port") == port or (
                os.path.exists(port) and os.path.realpath(port) == record.get("port")):
            return record
    return None


class RomLoader:
    """The virtual chip in download mode, served on a pty (default) or a TCP port.

    Use as a context manager: `with RomLoader("esp32", flash_path, 4 << 20) as rom:` then
    point esptool at `rom.port`.
    """

    _count = 0

    def __init__(self, chip: str, flash_path: str | os.PathLike, flash_size: int, *,
                 tcp_port: int | None = None) -> None:
        self.chip = rom_chip(chip)
        self.flash = FlashFile(flash_path, flash_size)
        self.protocol = RomProtocol(self.chip, self.flash)
        self._tcp_port = tcp_port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = None
        self._listener: socket.socket | None = None
        self.port = ""

    @property
    def unhandled(self) -> list[str]:
        return self.protocol.unhandled

    def start(self) -> RomLoader:
        if self._tcp_port is None:
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            self.port = os.ttyname(self._slave)
            target = self._serve_pty
        else:
            self._listener = socket.create_server(("127.0.0.1", self._tcp_port))
            self.port = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
            target = self._serve_tcp
        self._thread = threading.Thread(target=target, name=f"romloader-{self.chip.name}",
                                        daemon=True)
        self._thread.start()
        RomLoader._count += 1
        self._record = _registry_dir() / f"{os.getpid()}-{RomLoader._count}.json"
        self._record.parent.mkdir(parents=True, exist_ok=True)
        self._record.write_text(json.dumps({"pid": os.getpid(), "port": self.port,
                                            "chip": self.chip.name,
                                            "flash": str(self.flash.path)}))
        return self

    def stop(self) -> None:
        if getattr(self, "_record", None) is not None:
            self._record.unlink(missing_ok=True)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        if self._listener is not None:
            self._listener.close()
        self.flash.close()

    def __enter__(self) -> RomLoader:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self, recv, send) -> None:
        decoder = SlipDecoder()
        while not self._stop.is_set():
            data = recv()
            if data is None:
                return
            for packet in decoder.feed(data):
                for response in self.protocol.handle(packet):
                    send(slip_encode(response))

    def _serve_pty(self) -> None:
        master = self._master

        def recv():
            while not self._stop.is_set():
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        return os.read(master, 65536)
                    except OSError:
                        return None
            return None

        def send(data: bytes) -> None:
            view = memoryview(data)
            while view:
                n = os.write(master, view)
                view = view[n:]

        self._serve(recv, send)

    def _serve_tcp(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(0.1)

                def recv():
                    while not self._stop.is_set():
                        try:
                            data = conn.recv(65536)
                        except TimeoutError:
                            continue
                        return data or None
                    return None

                self._serve(recv, conn.sendall)
