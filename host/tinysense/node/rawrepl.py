"""The raw REPL's exec exchange, read in bulk with timeouts (mpremote reads byte by byte).

mpremote's SerialTransport opens the port and enters the raw REPL; for each exec this module
does the rest of the protocol (as in MicroPython's docs/reference/repl.rst, "raw mode and
raw-paste mode"): wait for the `>` prompt, send the code with raw-paste flow control (or plain
raw mode if the device lacks it), then read `OK`, `out \\x04 err \\x04`. Every wait polls the
port with a timeout, so a node that stops answering raises instead of hanging the host.
Bytes read past the end of an answer go back into the port (Pushback) for mpremote.
"""

from __future__ import annotations

import struct
import time

_POLL_S = 0.0005  # sleep between polls of an idle port
_RAW_CHUNK = 256  # bytes per write in plain raw mode (the device has no flow control then)


class RawReplTimeout(Exception):
    """The node did not send what the protocol expects in time. args[0]: what was received."""


class Pushback:
    """A pyserial port that can take back bytes read past the end of an answer.

    Everything else (write, dtr, rts, close...) reaches the real port.
    """

    def __init__(self, port) -> None:
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "_back", b"")

    def unread(self, data: bytes) -> None:
        object.__setattr__(self, "_back", bytes(data) + self._back)

    def read(self, size: int = 1) -> bytes:
        if not self._back:
            return self._port.read(size)
        out = self._back[:size]
        object.__setattr__(self, "_back", self._back[size:])
        if len(out) < size:
            out += self._port.read(size - len(out))
        return out

    def inWaiting(self) -> int:  # noqa: N802 (pyserial's old name, used by mpremote)
        return len(self._back) + self._port.inWaiting()

    @property
    def in_waiting(self) -> int:
        return len(self._back) + self._port.in_waiting

    def __getattr__(self, name):
        return getattr(self._port, name)

    def __setattr__(self, name, value) -> None:
        setattr(self._port, name, value)


def read_until(port: Pushback, token: bytes, timeout: float) -> bytes:
    """Read through the first `token` (returned with it); the rest goes back to the port.

    timeout: seconds of silence allowed (restarts with every byte received).
    """
    buf = bytearray()
    last = time.monotonic()
    start = 0
    while True:
        i = buf.find(token, start)
        if i >= 0:
            port.unread(buf[i + len(token):])
            return bytes(buf[:i + len(token)])
        start = max(0, len(buf) - len(token) + 1)
        waiting = port.in_waiting
        if waiting:
            buf += port.read(waiting)
            last = time.monotonic()
        elif time.monotonic() - last > timeout:
            raise RawReplTimeout(bytes(buf))
        else:
            time.sleep(_POLL_S)


def read_exact(port: Pushback, size: int, timeout: float) -> bytes:
    buf = bytearray()
    last = time.monotonic()
    while len(buf) < size:
        waiting = port.in_waiting
        if waiting:
            buf += port.read(min(waiting, size - len(buf)))
            last = time.monotonic()
        elif time.monotonic() - last > timeout:
            raise RawReplTimeout(bytes(buf))
        else:
            time.sleep(_POLL_S)
    return bytes(buf)


class RawRepl:
    """Exec on a port already in the raw REPL (see module docstring).

    use_raw_paste is cleared when the device answers that it has no raw-paste mode.
    """

    def __init__(self, port: Pushback, timeout: float = 10) -> None:
        self.port = port
        self.timeout = timeout
        self.use_raw_paste = True

    def send(self, code: bytes) -> None:
        """Send code for execution; returns once the device has taken all of it."""
        port, timeout = self.port, self.timeout
        read_until(port, b">", timeout)
        if self.use_raw_paste:
            port.write(b"\x05A\x01")
            answer = read_exact(port, 2, timeout)
            if answer == b"R\x01":
                self._paste(code)
                return
            if answer != b"R\x00":  # an old device echoed the request: wait for its prompt
                read_until(port, b"w REPL; CTRL-B to exit\r\n>", timeout)
            self.use_raw_paste = False
        for i in range(0, len(code), _RAW_CHUNK):
            port.write(code[i:i + _RAW_CHUNK])
            time.sleep(0.01)  # no flow control in plain raw mode: give the device time
        port.write(b"\x04")
        answer = read_exact(port, 2, timeout)
        if answer != b"OK":
            raise RawReplTimeout(answer)

    def _paste(self, code: bytes) -> None:
        port, timeout = self.port, self.timeout
        window = struct.unpack("<H", read_exact(port, 2, timeout))[0]
        remain = window
        i = 0
        while i < len(code):
            while remain == 0 or port.in_waiting:
                flag = read_exact(port, 1, timeout)
                if flag == b"\x01":
                    remain += window  # the device freed another window
                elif flag == b"\x04":
                    port.write(b"\x04")  # the device ended the paste early (e.g. Ctrl-C)
                    return
                else:
                    raise RawReplTimeout(b"unexpected byte during raw paste: " + flag)
            chunk = code[i:i + remain]
            port.write(chunk)
            remain -= len(chunk)
            i += len(chunk)
        port.write(b"\x04")
        read_until(port, b"\x04", timeout)  # the device acknowledges the end of the code

    def follow(self, timeout: float) -> tuple[bytes, bytes]:
        """Read the answer to one exec: (stdout, stderr text such as a traceback)."""
        out = read_until(self.port, b"\x04", timeout)[:-1]
        err = read_until(self.port, b"\x04", timeout)[:-1]
        return out, err
