"""`tinysense monitor`: a serial monitor that timestamps lines, decodes uplink frames, keeps a log,
and rides out resets and unplugging.

- Any pyserial URL (`serial_for_url`): /dev/ttyUSB0, a pty, socket://host:port, rfc2217://.
- Output: each line gets a local timestamp when it starts; partial lines (a REPL prompt)
  are shown as they arrive. A "TSF1 <base64>" line is followed by its decoded summary.
- Log file: complete lines, timestamped, appended (a reconnect is logged too).
- Keys typed go to the board unchanged (the terminal is in raw mode when stdin is a tty, so
  Ctrl-C and Ctrl-D reach the REPL); Ctrl-] quits; Ctrl-T Ctrl-R resets the node (as in
  idf.py monitor; Ctrl-T Ctrl-T sends one Ctrl-T): a serial device by its RTS line (EN,
  as esptool does), the virtual board, QEMU or a socket by `machine.reset()` at the REPL. When stdin is not a tty it is read and
  passed through the same way, and its end (EOF) stops the monitor, as the end of any
  input does (`tinysense monitor < /dev/null` shows what is there and exits; use --timeout
  to watch for a while). `timeout`: stop after that many seconds.
- If the port goes away (board reset over USB, cable pulled, the virtual board restarted),
  the monitor says so and reopens the same path every half second until it is back. A USB
  port that comes back under another name (/dev/ttyACM0 -> /dev/ttyACM1, as native-USB
  ESP32-S3/C3 boards do when reset) is found again by its USB VID:PID and serial number.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

import serial

from tinysense.errors import TinysenseError
from tinysense.monitor.frames import FrameDescriber

EXIT_KEY = b"\x1d"          # Ctrl-]
MENU_KEY = 0x14             # Ctrl-T: the next key is a command
RESET_KEY = 0x12            # Ctrl-T Ctrl-R: reset the node
_READ_TIMEOUT = 0.05
_RETRY_S = 0.5


def stamp(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now).strftime("%H:%M:%S.%f")[:-3]


class Monitor:
    """Watch one serial port until stop() (or Ctrl-] on the input).

    Args:
        url: pyserial URL or device path (reopened by the same name after a disconnect).
        baud: console baud rate.
        describer: turns frame lines into summaries (FrameDescriber).
        log: path of the log file to append to, or None.
        out: where the display goes (default stdout).
        clock: returns the time used for timestamps.
    """

    def __init__(self, url: str, baud: int = 115200, *, describer: FrameDescriber | None = None,
                 log: str | os.PathLike | None = None, out: TextIO | None = None,
                 clock: Callable[[], float] = time.time, stop_on_eof: bool = False) -> None:
        self.url = url
        self.stop_on_eof = stop_on_eof
        self.baud = baud
        self.describer = describer or FrameDescriber()
        self.out = out or sys.stdout
        # a raw-mode terminal needs CR LF; a pipe or file gets plain LF
        self._nl = "\r\n" if getattr(self.out, "isatty", lambda: False)() else "\n"
        self.clock = clock
        self._log = open(log, "a", encoding="utf-8") if log else None
        self._stop = threading.Event()
        self._ser: serial.SerialBase | None = None
        self._lock = threading.Lock()
        self._line = bytearray()        # the current line so far
        self._line_t: float | None = None
        self._display_open = False      # the display has a started, unfinished line
        self.reconnects = 0
        self.frames = 0
        self._usb: tuple | None = None   # (vid, pid, serial number) of a USB port
        self._menu = False               # the last key was Ctrl-T
        self.resets = 0

    # -- port --------------------------------------------------------------------------------

    def _open(self) -> serial.SerialBase:
        kwargs = {"baudrate": self.baud, "timeout": _READ_TIMEOUT}
        if "://" not in self.url:
            kwargs["exclusive"] = True   # so `tinysense flash` sees the port is busy
        return serial.serial_for_url(self.url, **kwargs)

    def _usb_identity(self) -> tuple | None:
        from serial.tools import list_ports

        here = os.path.realpath(self.url)
        for port in list_ports.comports():
            if port.vid is not None and os.path.realpath(port.device) == here:
                return (port.vid, port.pid, port.serial_number)
        return None

    def _find_moved_port(self) -> str | None:
        """The device now carrying the USB identity the port had, if it has a new name."""
        from serial.tools import list_ports

        for port in list_ports.comports():
            if (port.vid, port.pid, port.serial_number) == self._usb and port.device != self.url:
                return port.device
        return None

    def open_first(self) -> None:
        """Open the port once, failing with a clear error if it is missing or busy."""
        if "://" not in self.url and not os.path.exists(self.url):
            raise TinysenseError(f"serial port {self.url} does not exist: is the board plugged "
                                 "in? (or start the virtual board: tinysense board start)")
        try:
            self._ser = self._open()
        except serial.SerialException as exc:
            if "exclusively lock" in str(exc):
                raise TinysenseError(f"serial port {self.url} is busy: another program has it "
                                     "open (a flash, mpremote, another monitor)") from None
            raise TinysenseError(f"cannot open {self.url}: {exc}") from None
        if "://" not in self.url:
            self._usb = self._usb_identity()

    def _reconnect(self, why: str) -> bool:
        self._finish_line()
        self._note(f"{self.url} disconnected ({why}); waiting for it to come back "
                   "(Ctrl-] quits)")
        with contextlib.suppress(Exception):
            self._ser.close()
        self._ser = None
        while not self._stop.is_set():
            try:
                ser = self._open()
            except (serial.SerialException, OSError, ValueError):
                moved = self._find_moved_port() if self._usb is not None else None
                if moved is not None:
                    self._note(f"the board is back as {moved}")
                    self.url = moved
                    continue
                self._stop.wait(_RETRY_S)
                continue
            with self._lock:
                self._ser = ser
            self.reconnects += 1
            self._note(f"reconnected to {self.url}")
            return True
        return False

    # -- output ------------------------------------------------------------------------------

    def _emit(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _log_line(self, t: float, text: str) -> None:
        if self._log is not None:
            self._log.write(f"{stamp(t)} {text}\n")
            self._log.flush()

    def _note(self, text: str) -> None:
        t = self.clock()
        self._emit(f"{stamp(t)} [monitor] {text}{self._nl}")
        self._log_line(t, f"[monitor] {text}")

    def _finish_line(self) -> None:
        """End a partial line (before a monitor note or at exit)."""
        if self._line:
            self._complete_line(newline=False)
        if self._display_open:
            self._emit(self._nl)
            self._display_open = False

    def _complete_line(self, newline: bool = True) -> None:
        raw = bytes(self._line).rstrip(b"\r")
        t = self._line_t if self._line_t is not None else self.clock()
        text = raw.decode("utf-8", errors="replace")
        self._log_line(t, text)
        self._line.clear()
        self._line_t = None
        summary = self.describer.describe(text)
        if summary is not None:
            self.frames += 1
            if self._display_open or not newline:
                self._emit(self._nl)
            self._emit(f"{stamp(t)} {summary}{self._nl}")
            self._log_line(t, summary)
            self._display_open = False

    def feed(self, data: bytes) -> None:
        """Show and log bytes received from the port."""
        for piece in data.splitlines(keepends=True):
            if not self._line and self._line_t is None:
                self._line_t = self.clock()
            if not self._display_open:
                self._emit(f"{stamp(self._line_t)} ")
                self._display_open = True
            ends = piece.endswith(b"\n")
            body = piece.rstrip(b"\r\n")
            self._line += body
            self._emit(body.decode("utf-8", errors="replace"))
            if ends:
                self._emit(self._nl)
                self._display_open = False
                self._complete_line()

    # -- input -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Pass keystrokes to the board; Ctrl-] stops the monitor instead, Ctrl-T Ctrl-R
        resets the node (Ctrl-T Ctrl-T: one Ctrl-T; Ctrl-T and another key: both keys)."""
        if EXIT_KEY in data:
            data = data[:data.index(EXIT_KEY)]
            self._stop.set()
        out = bytearray()
        for b in data:
            if self._menu:
                self._menu = False
                if b == RESET_KEY:
                    self._write(bytes(out))
                    out.clear()
                    self.reset()
                    continue
                if b != MENU_KEY:
                    out.append(MENU_KEY)
                out.append(b)
            elif b == MENU_KEY:
                self._menu = True
            else:
                out.append(b)
        self._write(bytes(out))

    def _write(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            ser = self._ser
        if ser is None:
            return  # disconnected: keystrokes are dropped, as with a cable pulled
        with contextlib.suppress(serial.SerialException, OSError):
            ser.write(data)

    def _hardware_reset(self) -> bool:
        """Whether the port is a real serial device, reset by its RTS line (a pty, as the
        virtual board's, and network URLs have none)."""
        if "://" in self.url:
            return False
        real = os.path.realpath(self.url)
        return not (real.startswith("/dev/pts/") or real.startswith("/dev/ptmx"))

    def reset(self) -> None:
        """Reset the node: EN pulled low through RTS for 100 ms on a serial device (esptool's
        wiring: RTS -> EN, DTR -> GPIO0, held high so the chip boots the firmware), else
        Ctrl-C twice and `machine.reset()` typed at the REPL."""
        with self._lock:
            ser = self._ser
        if ser is None:
            self._note("not connected: cannot reset the node now")
            return
        self.resets += 1
        hard = self._hardware_reset()
        self._note("resetting the node (%s)" % ("RTS/EN line" if hard else "machine.reset()"))
        with contextlib.suppress(serial.SerialException, OSError, ValueError):
            if hard:
                ser.dtr = False
                ser.rts = True
                time.sleep(0.1)
                ser.rts = False
            else:
                ser.write(b"\r\x03\x03")
                time.sleep(0.1)
                ser.write(b"import machine; machine.reset()\r")

    def _stdin_loop(self, fd: int) -> None:
        while not self._stop.is_set():
            try:
                data = os.read(fd, 1024)
            except OSError:
                return
            if not data:     # end of piped input
                if self.stop_on_eof:
                    self._stop.set()
                return
            self.send(data)

    # -- main loop ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self, stdin: int | None = None, timeout: float | None = None) -> None:
        """Monitor until stopped (or `timeout` seconds). `stdin`: a file descriptor to pass
        through (None: none)."""
        if timeout is not None:
            timer = threading.Timer(timeout, self._stop.set)
            timer.daemon = True
            timer.start()
        if self._ser is None:
            self.open_first()
        self._note(f"monitoring {self.url} at {self.baud} baud (Ctrl-] quits, "
                   "Ctrl-T Ctrl-R resets)")
        if stdin is not None:
            threading.Thread(target=self._stdin_loop, args=(stdin,), daemon=True,
                             name="monitor-stdin").start()
        try:
            while not self._stop.is_set():
                try:
                    data = self._ser.read(4096)
                except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                    if not self._reconnect(str(exc).splitlines()[0] if str(exc) else "gone"):
                        break
                    continue
                if data:
                    self.feed(data)
                elif "://" not in self.url and not os.path.exists(self.url):
                    # a USB device that vanished can read as silence rather than an error
                    if not self._reconnect("device node removed"):
                        break
        finally:
            self._finish_line()
            with contextlib.suppress(Exception):
                self._ser.close()
            if self._log is not None:
                self._log.close()


@contextlib.contextmanager
def raw_terminal(fd: int):
    """Put a tty in raw mode for the duration (keys go to the board as typed)."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_monitor(url: str, baud: int = 115200, *, log: str | os.PathLike | None = None,
                db: str | os.PathLike | None = None, timeout: float | None = None) -> Monitor:
    """The CLI's monitor: decodes frames with the registry in `db` (default the gateway's)."""
    from tinysense.monitor.frames import registry_keys, registry_labels

    keys = registry_keys(db)
    fd = sys.stdin.fileno() if sys.stdin is not None else None
    tty = fd is not None and os.isatty(fd)
    mon = Monitor(url, baud, describer=FrameDescriber(keys, registry_labels(db)), log=log,
                  stop_on_eof=not tty)
    mon.open_first()
    if keys is None:
        mon._note("no gateway registry found: frames are shown by header only "
                  "(--db PATH to use one)")
    if log:
        mon._note(f"logging to {Path(log).resolve()}")
    if tty:
        with raw_terminal(fd):
            mon.run(stdin=fd, timeout=timeout)
    else:
        mon.run(stdin=fd, timeout=timeout)
    return mon
