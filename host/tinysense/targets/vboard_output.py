"""What clients see of the virtual board's VM output: board line endings, no internal markers.

The VM (vboard/_vboot.py) writes markers that only the supervisor reads; OutputFilter removes
them (also when a chunk boundary splits one), turns LF into CRLF and tracks the REPL mode.
"""

from __future__ import annotations

# What the child writes once boot.py/main.py have run (see vboard/_vboot.py). Never printed to
# clients; NUL bytes do not occur in REPL text.
SENTINEL = b"\x00\x00tsvb-booted\x00\x00"
# Written as soon as the VM has mounted its flash, before boot.py: the VM is up.
UP = b"\x00\x00tsvb-up\x00\x00"
# What the child writes when boot.py/main.py end in SystemExit (sys.exit(), machine.soft_reset(),
# machine.reset()): `micropython -i` would enter its REPL instead of exiting, so the VM asks to
# be ended: EXIT_PREFIX, the exit status in decimal, then "\x00\x00". Never shown to clients.
EXIT_PREFIX = b"\x00\x00tsvb-exit "
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'


class OutputFilter:
    """Turns the child's output into what a board's UART would send.

    Phases: "boot" (forward, watch for the sentinel), "hold" (after a raw-mode restart: drop
    the unix port's banner until its raw REPL banner) and "run". It also translates lone LF to
    CRLF (a board's stdout is cooked) and tracks whether the REPL is in raw or friendly mode.
    """

    def __init__(self, raw_restart: bool = False, raw_mode: bool = False) -> None:
        self.phase = "boot"
        self.raw_restart = raw_restart
        self.raw_mode = raw_mode
        self.up = False  # UP seen
        self.booted = False  # sentinel seen
        self.exit_code: int | None = None  # the VM asked to exit with this status
        self._pending = b""  # bytes held back: a possible sentinel prefix or the hold buffer
        self._last = b""  # last forwarded byte, for LF -> CRLF
        self._tail = b""  # recent output, for banner detection across chunks

    def feed(self, data: bytes) -> bytes:
        """Return the bytes to send to clients for this chunk of child output."""
        data = self._pending + data
        self._pending = b""
        out = b""
        if self.phase == "boot" and not self.up:
            k = data.find(UP)
            if k >= 0:
                self.up = True
                data = data[:k] + data[k + len(UP):]
        if self.phase == "boot":
            j = data.find(EXIT_PREFIX)
            if j >= 0:
                end = data.find(b"\x00\x00", j + len(EXIT_PREFIX))
                if end >= 0:
                    self.exit_code = int(data[j + len(EXIT_PREFIX):end])
                else:
                    self._pending = data[j:]  # the rest of the request is on its way
                return self._emit(data[:j])
            i = data.find(SENTINEL)
            if i < 0:
                keep = max(_prefix_overlap(data, SENTINEL), _prefix_overlap(data, EXIT_PREFIX),
                           0 if self.up else _prefix_overlap(data, UP))
                self._pending = data[len(data) - keep:] if keep else b""
                return self._emit(data[: len(data) - keep])
            out = self._emit(data[:i])
            data = data[i + len(SENTINEL):]
            self.booted = True
            self.phase = "hold" if self.raw_restart else "run"
        if self.phase == "hold":
            i = data.find(RAW_BANNER)
            if i < 0:
                self._pending = data[-(len(RAW_BANNER) - 1):]  # enough to match across chunks
                return out
            data = data[i:]
            self.phase = "run"
        return out + self._emit(data)

    def _emit(self, data: bytes) -> bytes:
        if not data:
            return b""
        # LF -> CRLF unless already preceded by CR (the inner pty has output processing off).
        parts = data.split(b"\n")
        buf = bytearray(parts[0])
        prev = (parts[0][-1:] or self._last)
        for part in parts[1:]:
            buf += b"\n" if prev == b"\r" else b"\r\n"
            buf += part
            prev = part[-1:] or b"\n"
        self._last = bytes(buf[-1:])
        self._track_mode(bytes(buf))
        return bytes(buf)

    def _track_mode(self, data: bytes) -> None:
        text = self._tail + data
        raw_at, friendly_at = text.rfind(RAW_BANNER), text.rfind(FRIENDLY_BANNER)
        if raw_at >= 0 or friendly_at >= 0:
            self.raw_mode = raw_at > friendly_at
        self._tail = text[-64:]


def _prefix_overlap(data: bytes, token: bytes) -> int:
    """Length of the longest suffix of data that is a proper prefix of token."""
    for n in range(min(len(token) - 1, len(data)), 0, -1):
        if data.endswith(token[:n]):
            return n
    return 0
