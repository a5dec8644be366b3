"""Serial transport: "TSF1 <base64>" frame lines from any pyserial URL, optional TSA1 acks."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable

from tinysense.errors import TinysenseError
from tinysense.formats import app as _app
from tinysense.gateway.core import Ack
from tinysense.gateway.ingest import IngestLoop

log = logging.getLogger("tinysense.gateway")

SERIAL_FRAME_PREFIX = _app.SERIAL_FRAME_PREFIX.encode()   # b"TSF1 ": the node's (formats.app)
SERIAL_ACK_PREFIX = _app.SERIAL_ACK_PREFIX.encode()       # b"TSA1 "
MAX_LINE = 4096  # a max frame is 1392 base64 chars; anything longer is not a frame line


class SerialTransport:
    """Reads "TSF1 <base64 frame>" lines from a serial port or any pyserial URL.

    Other lines (the node's console output) are ignored. With `acks=True` each ack is
    written back as "TSA1 <base64 ack>\\n" (only useful when the node reads its UART for
    acks; a MicroPython REPL would take it as input, so it is off by default). `on_line`, if
    given, gets every other line (the node's console, as bytes) in the transport's thread.
    """

    def __init__(self, loop: IngestLoop, url: str, baud: int = 115200, acks: bool = False,
                 on_line: Callable[[bytes], None] | None = None):
        import serial

        self.loop = loop
        self.url = url
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.2)
        except (serial.SerialException, ValueError) as exc:
            raise TinysenseError(f"cannot open serial port {url}: {exc}; expected a device "
                                 "such as /dev/ttyUSB0 or a pyserial URL (socket://HOST:PORT)"
                                 ) from None
        sock = getattr(self.port, "_socket", None)  # socket://: each ack at once, not Nagled
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.acks = acks
        self.on_line = on_line
        self.lines_ignored = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-serial", daemon=True)
        self._thread.start()

    def _reply(self, ack: Ack) -> None:
        self.write(SERIAL_ACK_PREFIX + base64.b64encode(ack.frame) + b"\n")

    def write(self, data: bytes) -> None:
        """Write bytes to the port (between acks, never inside one)."""
        with self._write_lock:
            self.port.write(data)

    def _run(self) -> None:
        source = f"serial:{self.url}"
        reply = self._reply if self.acks else None
        buf = bytearray()
        overlong = None  # inside a line past MAX_LINE: whether it is a frame line
        while not self._stop.is_set():
            try:
                chunk = self.port.read(self.port.in_waiting or 1)
            except Exception as exc:  # noqa: BLE001 - port unplugged, pty closed...
                if not self._stop.is_set():
                    log.error("serial port %s failed: %s", self.url, exc)
                return
            if not chunk:
                continue
            buf += chunk
            while True:
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > MAX_LINE:  # no newline in sight: skip to the next one
                        if overlong is None:
                            overlong = buf.find(SERIAL_FRAME_PREFIX) >= 0
                        del buf[:]
                    break
                line = bytes(buf[:end]).strip()
                del buf[:end + 1]
                if overlong is not None:  # the end of a skipped line
                    if overlong:  # a frame line far too long, however it was read: counted
                        self.loop.submit(None, source)
                    overlong = None
                    continue
                self._line(line, source, reply)

    def _line(self, line: bytes, source: str, reply) -> None:
        start = line.find(SERIAL_FRAME_PREFIX)
        if start < 0:
            self.lines_ignored += 1
            if self.on_line is not None:
                self.on_line(line)
            return
        text = line[start + len(SERIAL_FRAME_PREFIX):]
        if len(text) > MAX_LINE:
            self.loop.submit(None, source)
            return
        try:
            frame = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            frame = None  # counted as bad_encoding by the gateway
        self.loop.submit(frame, source, reply)

    def stop_receiving(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def close(self) -> None:
        self.stop_receiving()
        self.port.close()
