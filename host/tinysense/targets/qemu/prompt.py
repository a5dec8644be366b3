"""Wait until a MicroPython node answers with its REPL prompt on a serial URL (TCP, pty, port)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO, Callable

from tinysense.errors import TinysenseError

PROMPT = b">>> "
_POKE_EVERY_S = 1.0  # a booting node may miss the first Enter; poke again this often
_TAIL = 400  # characters of received text quoted in a timeout error


def _open(url: str, baud: int):
    import serial

    return serial.serial_for_url(url, baudrate=baud, timeout=0.05)


def wait_for_prompt(url: str, timeout: float = 60.0, *, interrupt: bool = True,
                    baud: int = 115200, log: str | Path | BinaryIO | None = None,
                    alive: Callable[[], str | None] | None = None) -> str:
    """Connect to `url` and return what was received once the node shows `>>> `.

    QEMU's TCP UART drops what the guest prints while no client is connected, and a
    board may still be booting: so this retries the connection, then sends Ctrl-C (when
    `interrupt`: stops a running main.py, as mpremote does on connect) and Enter every
    second until the friendly REPL prompt appears.

    Args:
        url: any pyserial URL: `socket://127.0.0.1:5555`, `/dev/ttyUSB0`, a pty path.
        timeout: seconds for the whole wait (connecting included).
        interrupt: send Ctrl-C before Enter.
        baud: baud rate for real serial ports (ignored by sockets and ptys).
        log: a path or binary file that receives every byte read.
        alive: called while waiting; a string it returns (why the node's process died)
            ends the wait at once with that reason.

    Raises:
        TinysenseError: no prompt within `timeout`; quotes the last text received.
    """
    deadline = time.monotonic() + timeout
    received = bytearray()
    sink = open(log, "ab") if isinstance(log, (str, Path)) else log  # noqa: SIM115
    last_error = ""
    try:
        while time.monotonic() < deadline:
            _check_alive(alive)
            try:
                port = _open(url, baud)
            except Exception as exc:  # serial.SerialException, OSError: not up yet
                last_error = str(exc)
                time.sleep(0.2)
                continue
            try:
                if _poll_prompt(port, deadline, interrupt, received, sink, alive):
                    return received.decode("utf-8", "replace")
            except TinysenseError:
                raise
            except Exception as exc:  # the other end went away (QEMU restarting): reconnect
                last_error = str(exc)
            finally:
                port.close()
            time.sleep(0.2)
    finally:
        if sink is not None and sink is not log:
            sink.close()
    tail = received[-_TAIL:].decode("utf-8", "replace")
    what = f"received: {tail!r}" if received else f"nothing received ({last_error or 'silent'})"
    raise TinysenseError(f"no MicroPython prompt on {url} within {timeout:.0f} s; {what}")


def _check_alive(alive: Callable[[], str | None] | None) -> None:
    why = alive() if alive is not None else None
    if why:
        raise TinysenseError(why)


def _poll_prompt(port, deadline: float, interrupt: bool, received: bytearray,
                 sink: BinaryIO | None, alive: Callable[[], str | None] | None) -> bool:
    next_poke = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_poke:
            _check_alive(alive)
            port.write(b"\x03\r" if interrupt else b"\r")
            next_poke = now + _POKE_EVERY_S
        chunk = port.read(256)
        if chunk:
            received += chunk
            if sink is not None:
                sink.write(chunk)
                sink.flush()
            if PROMPT in received[-len(PROMPT) - len(chunk):]:
                return True
    return False
