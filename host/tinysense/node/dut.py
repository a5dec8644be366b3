"""Expect-style access to a node's console: wait for a regex, quote what came on failure.

    dut = Dut(node, log_path)               # or Dut(pyserial_object, log_path)
    dut.write(b"\\x04")                      # soft reset from the friendly REPL
    m = dut.expect(r"app: window (\\d+)", timeout=10)

Every byte read is appended to the log file, so a failure can point at the full log while
quoting only the tail. Works on any pyserial object (board, QEMU socket, virtual board pty).
"""

from __future__ import annotations

import codecs
import re
import time
from pathlib import Path

_QUOTE = 600  # characters of received text quoted in a failure


class ExpectTimeout(AssertionError):
    """The expected text did not arrive in time (an AssertionError, so pytest reports it)."""


class Dut:
    """The console of a device under test.

    Args:
        source: a tinysense Node (its current port is used, also after a reconnect) or an
            open pyserial object.
        log_path: file that receives everything read (appended).
    """

    def __init__(self, source, log_path: str | Path) -> None:
        self.node = source if hasattr(source, "transport") else None
        self._serial = None if self.node is not None else source
        # an emulated node's waits are longer (tinysense.targets.TIMEOUT_SCALE)
        self.timeout_scale = getattr(self.node, "timeout_scale", 1.0)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in close())
        self.buffer = ""  # received and not yet consumed by a match
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")  # chars may split

    @property
    def serial(self):
        return self.node.transport.serial if self.node is not None else self._serial

    def _read_some(self, wait: float) -> str:
        serial = self.serial
        old = serial.timeout
        serial.timeout = wait
        try:
            chunk = serial.read(max(1, serial.in_waiting))
        finally:
            serial.timeout = old
        if chunk:
            self._log.write(chunk)
            self._log.flush()
        return self._decoder.decode(chunk)

    def _append(self, text: str) -> None:
        # CR LF may arrive split across reads: normalise the whole unconsumed buffer
        self.buffer = (self.buffer + text).replace("\r\n", "\n")

    def expect(self, pattern: str | re.Pattern, timeout: float = 10.0) -> re.Match:
        """Read until `pattern` (a regex, searched in the received text) matches; return the
        match and drop the text up to its end. Line ends are normalised to \\n.

        Raises:
            ExpectTimeout: no match within `timeout` s; quotes the tail of what arrived and
                names the full log file.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not this loop
        return self._expect_within(pattern, timeout * self.timeout_scale)

    def _expect_within(self, pattern: str | re.Pattern, timeout: float) -> re.Match:
        __tracebackhide__ = True
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.buffer)
            if match:
                self.buffer = self.buffer[match.end():]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._append(self._read_some(min(left, 0.2)))
            except OSError as exc:  # the port went away (board unplugged, VM restarting)
                self._append(f"\n[tinysense: read failed: {exc}]\n")
                time.sleep(min(max(left, 0), 0.2))
        got = len(self.buffer)
        which = f"last {_QUOTE} of {got}" if got > _QUOTE else f"{got}"
        raise ExpectTimeout(
            f"expected /{regex.pattern}/ within {timeout:g} s; received ({which} chars):\n"
            f"{self.buffer[-_QUOTE:]!r}\nfull console log: {self.log_path}")

    def expect_lines(self, pattern: str, count: int, timeout: float = 10.0) -> list[re.Match]:
        """`count` successive matches of `pattern`, all within `timeout` seconds in total."""
        __tracebackhide__ = True
        timeout *= self.timeout_scale
        deadline = time.monotonic() + timeout
        return [self._expect_within(pattern, max(deadline - time.monotonic(), 0.01))
                for _ in range(count)]

    def drain(self, quiet: float = 0.2) -> str:
        """Read until the console has been silent for `quiet` s; return and drop that text."""
        while True:
            chunk = self._read_some(quiet)
            if not chunk:
                break
            self._append(chunk)
        text, self.buffer = self.buffer, ""
        return text

    def write(self, data: bytes | str) -> None:
        """Send bytes (or text, UTF-8) to the node's console."""
        self.serial.write(data.encode() if isinstance(data, str) else data)

    def raw_repl(self, timeout: float = 10.0) -> None:
        """Hand the console back to the node's raw REPL, so node.exec works again after
        expect() has read the prompt (interrupts code that still runs, with Ctrl-C)."""
        self.drain(0.05)
        self.node.transport.enter_raw_repl(soft_reset=False,
                                           timeout_overall=timeout * self.timeout_scale)

    def close(self) -> None:
        self._log.close()
