"""The virtual board's supervisor: serves the unix port on a pty and TCP, restarts it on reset.

One process per running virtual board (`python -m tinysense.targets.supervisor ...`, started by
`tinysense.targets.virtual.start_board`). It owns:

- an outer pty whose slave is the board's "serial port" (`mpremote connect /dev/pts/N`), kept
  open by the supervisor so that clients may come and go;
- an optional TCP listener on 127.0.0.1 (`socket://127.0.0.1:N`), one client at a time;
- the MicroPython unix port as a child on its own inner pty.

Ctrl-C: a board's UART turns Ctrl-C into KeyboardInterrupt while code runs, and passes it as a
byte to the REPL otherwise. The unix port catches SIGINT only while it executes code (the rest
of the time SIGINT would kill it), so the inner pty has ISIG off and the supervisor decides:
if the VM catches SIGINT now (/proc/<pid>/status), Ctrl-C becomes a SIGINT; during boot it is
held until boot.py/main.py run; otherwise it is passed on as a byte.

A board soft-resets without losing its UART; the unix port instead exits on Ctrl-D at an empty
raw or friendly REPL, `machine.soft_reset()` or `sys.exit()`. The supervisor hides that: it
prints `MPY: soft reboot`, starts a fresh VM behind the same pty and TCP port, runs boot.py (and
main.py in friendly mode) and, if the host was in the raw REPL, re-enters it and answers
`raw REPL; CTRL-B to exit` as a board does, so mpremote's soft reset and exec keep working.
"""

from __future__ import annotations

import argparse
import array
import errno
import fcntl
import hashlib
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path

from tinysense.paths import PORTS_DIR
from tinysense.targets import relay
from tinysense.targets.vboard_output import OutputFilter

HARD_RESET_EXIT = 99  # exit status of machine.reset() in vboard/machine.py
SOFT_REBOOT = b"MPY: soft reboot\r\n"
VBOARD_DIR = PORTS_DIR / "unix-vboard"  # the VM's machine/os shims and _vboot.py
STATE_FILE = "supervisor.json"
TTY_LINK = "tty"
_MAX_FAILED_STARTS = 3  # VMs that die before ever coming up: the executable cannot run
_FAST_CRASH_S = 1.0  # a VM that exits sooner than this after start is restarted with back-off
_SIGINT_INTERVAL_S = 0.3
_PTY_BACKLOG = 256 * 1024  # output held for a slow pty reader before the VM must wait
_PTY_STALL_S = 5.0  # pty output nobody read for this long is dropped (a busy host may pause)
_DEBUG = bool(os.environ.get("TINYSENSE_VBOARD_DEBUG"))  # log relay events to supervisor.log


# With this, glibc's malloc serves the VM's GC heap (-X heapsize= up to 32 MB) from the brk
# heap of the non-PIE 32-bit build, near 0x08000000-0x0a000000: below 0x40000000 like the RAM
# of an ESP32/S3/C3, where an address is a small int in viper (a larger heap would be mmapped
# at 0xf7xxxxxx, and every address handed to or from viper as an int would be boxed: a heap
# allocation each time). Harmless for the 64-bit VM.
HEAP_TUNABLES = "glibc.malloc.mmap_threshold=33554432"


def vm_env(env: dict[str, str] | None = None, *, low_heap: bool = True) -> dict[str, str]:
    """The environment to run a unix-port VM in: `env` (default os.environ) with
    GLIBC_TUNABLES extended by HEAP_TUNABLES when low_heap (other tunables are kept)."""
    env = dict(os.environ if env is None else env)
    if low_heap:
        tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":")
                    if t and not t.startswith("glibc.malloc.mmap_threshold=")]
        env["GLIBC_TUNABLES"] = ":".join(tunables + [HEAP_TUNABLES])
    return env


def _debug(*args) -> None:
    if _DEBUG:
        print(f"{time.monotonic():.3f}", *args, file=sys.stderr, flush=True)


def _child_termios(fd: int) -> None:
    """Inner pty line settings while the VM executes code: bytes pass untouched, no echo, no
    signals from characters (the supervisor turns Ctrl-C into SIGINT when the VM catches it)."""
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag: no CR/NL translation, no flow control
    attrs[1] = 0  # oflag: no output processing (the OutputFilter does LF -> CRLF)
    attrs[3] = 0  # lflag: raw
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _become_session_leader() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # Ignored at exec, so the CPython wrapper of the PyPI unix port leaves SIGINT alone and
    # only MicroPython's own handler (installed while it executes code) ever catches it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def catches_sigint(pid: int) -> bool:
    """Whether process `pid` has a handler for SIGINT right now (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


class Supervisor:
    """Runs one virtual board until SIGTERM/SIGINT (or its parent process goes away)."""

    def __init__(self, *, board: str, board_dir: Path, micropython: str, heap: int,
                 tcp: int | None, parent: int | None = None) -> None:
        self.board = board
        self.board_dir = board_dir
        self.flash_dir = board_dir / "flash"
        # machine.unique_id(): 6 bytes, fixed per board directory (a locally administered MAC).
        digest = hashlib.sha256(str(board_dir.resolve()).encode()).digest()
        self.uid = bytes([digest[0] & 0xFC | 0x02]).hex() + digest[1:6].hex()
        self.micropython = micropython
        self.heap = heap
        self.parent = relay.ParentWatch(parent)
        self.stopping = False
        self.child: subprocess.Popen | None = None
        self.inner = -1
        self.filter = OutputFilter()
        self.queued = b""  # client input waiting for the VM to be ready
        self.pending_interrupt = False  # Ctrl-C received while the VM could not take SIGINT
        self.last_sigint = 0.0
        self.started_at = 0.0
        self.fast_crashes = 0
        self.exit_request: int | None = None  # status the VM asked to exit with (EXIT_PREFIX)
        self.ever_up = False  # some VM got as far as mounting its flash (UP)
        self.failed_starts = 0  # VMs that crashed before UP while none ever came up
        self.vm_tail = b""  # the VM's last output, for the error when it cannot start
        self.restarts = 0
        self.tcp = None if tcp is None else relay.TcpPort(
            tcp, "choose another with --tcp, or --tcp 0 for any free port")
        self.tcp_port = self.tcp.port if self.tcp else None
        self.pty_out = bytearray()  # output not yet taken by the pty (see _flush_pty)
        self.pty_written = self.pty_consumed = 0
        self.pty_stalled_at: float | None = None
        self.pty_unread = False  # nobody reads the pty: output that does not fit is dropped
        self.outer, self.outer_slave = pty.openpty()
        tty.setraw(self.outer_slave)
        os.set_blocking(self.outer, False)
        self.pty_path = os.ttyname(self.outer_slave)

    # --- the VM -------------------------------------------------------------------------

    def _romfs_image(self) -> Path | None:
        img = self.board_dir / "romfs.img"
        return img if img.is_file() and img.stat().st_size > 0 else None

    def spawn(self, raw: bool) -> None:
        """Start the unix port: boot.py, then main.py (friendly mode only), then its REPL."""
        self.flash_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # the node's files hold its uplink key: owner-only, as the VM creates them (umask set
        # in main) and for a flash directory an older tinysense left 0755 / 0644
        self.flash_dir.chmod(0o700)
        for key in self.flash_dir.glob("uplink_key*"):
            key.chmod(0o600)
        romfs = self._romfs_image()
        # A board maps ROMFS from flash; the unix port must read it into its GC heap, so the
        # heap grows by the image size to keep the app's budget what the board config says.
        heap = self.heap + ((romfs.stat().st_size + 4095) // 4096 * 4096 if romfs else 0)
        # The 32-bit build (make nodes) has an ESP32's object sizes: 4-byte pointers, 16-byte
        # GC blocks, so the board's budget in bytes is the board's heap. The 64-bit fallback
        # needs 8 and 32, so object-heavy data (modules, lists, dicts) takes up to twice the
        # heap that it takes on the board, while byte buffers take the same: it gets the
        # budget in bytes too (pessimistic for objects), and TINYSENSE_VBOARD_HEAP=words
        # scales it to the word size (-X heapsize=Nw: N bytes of a 32-bit machine, 2N on a
        # 64-bit one: as many pointers as the board, twice the room for bytes).
        heap_arg = f"{heap}w" if os.environ.get("TINYSENSE_VBOARD_HEAP") == "words" \
            else str(heap)
        env = vm_env()
        env.update({
            "MICROPYPATH": f"{VBOARD_DIR}:",
            "TSVB_FLASH": str(self.flash_dir),
            "TSVB_ROMFS": str(romfs or ""),
            "TSVB_MODE": "raw" if raw else "friendly",
            "TSVB_BOARD": self.board,
            "TSVB_UID": self.uid,
        })
        self.vm_tail = b""
        master, slave = pty.openpty()
        _child_termios(slave)
        self.child = subprocess.Popen(
            [self.micropython, "-X", f"heapsize={heap_arg}", "-i",
             str(VBOARD_DIR / "_vboot.py")],
            stdin=slave, stdout=slave, stderr=slave, cwd=self.flash_dir, env=env,
            preexec_fn=_become_session_leader, close_fds=True)
        os.close(slave)
        self.inner = master
        self.filter = OutputFilter(raw_restart=raw, raw_mode=raw)
        self.pending_interrupt = False
        self.last_sigint = 0.0  # a new VM has no SIGINT in flight
        self.started_at = time.monotonic()
        self._write_state()

    def _child_exited(self) -> None:
        """The VM ended (reset, sys.exit, crash): report it as a board would and restart."""
        rc = self.child.wait() if self.child else 0
        if self.exit_request is not None:  # killed on its own request: use its status
            rc, self.exit_request = self.exit_request, None
        _debug("VM exited", rc)
        os.close(self.inner)
        self.inner = -1
        self.child = None
        if self.stopping:
            return
        raw = self.filter.raw_mode
        if rc == HARD_RESET_EXIT or rc < 0:
            # machine.reset() or a crash: a board comes back through its bootloader, in the
            # friendly REPL, and runs main.py.
            why = "machine.reset()" if rc == HARD_RESET_EXIT else f"crash (signal {-rc})"
            self.broadcast(f"\r\nvirtual board: hard reset after {why}\r\n".encode())
            raw = False
        else:
            self.broadcast(SOFT_REBOOT)
        crashed = rc not in (0, HARD_RESET_EXIT)  # resets are deliberate; crashes may loop
        if crashed and not self.ever_up:
            self.failed_starts += 1
            if self.failed_starts >= _MAX_FAILED_STARTS:
                tail = self.vm_tail.decode(errors="replace").strip().replace("\n", " | ")
                print(f"{self.micropython} exited with status {rc} {self.failed_starts} times "
                      f"before it could boot; its output: {tail[-300:] or '(none)'}",
                      file=sys.stderr, flush=True)
                self.stopping = True
                return
        if crashed and time.monotonic() - self.started_at < _FAST_CRASH_S:
            self.fast_crashes += 1
            time.sleep(min(0.05 * 2 ** self.fast_crashes, 2.0))
        else:
            self.fast_crashes = 0
        self.restarts += 1
        self.spawn(raw=raw)

    def _from_child(self) -> None:
        try:
            data = os.read(self.inner, 65536)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._child_exited()
            return
        was_booted = self.filter.booted
        _debug("vm>", data)
        self.vm_tail = (self.vm_tail + data)[-400:]
        out = self.filter.feed(data)
        if self.filter.up and not self.ever_up:
            self.ever_up = True
            self._write_state()  # start_board() waits for this
        if self.filter.exit_code is not None and self.exit_request is None and self.child:
            self.exit_request = self.filter.exit_code  # see EXIT_PREFIX
            self.child.kill()
        if not was_booted and self.filter.booted:
            self.pending_interrupt = False  # boot is over: the REPL takes Ctrl-C as a byte
            if self.filter.raw_restart:
                os.write(self.inner, b"\x01")  # back into the raw REPL the host was in
        self.broadcast(out)
        if self.queued and self._ready():
            queued, self.queued = self.queued, b""
            self._to_child(queued)

    def _ready(self) -> bool:
        return self.inner >= 0 and (self.filter.phase == "run" or not self.filter.raw_restart)

    def _catching(self) -> bool:
        return self.child is not None and catches_sigint(self.child.pid)

    def _sigint(self) -> None:
        os.kill(self.child.pid, signal.SIGINT)
        self.last_sigint = time.monotonic()
        self.pending_interrupt = False
        _debug("SIGINT to", self.child.pid)

    def _ctrl_c(self) -> None:
        """Ctrl-C from a client: KeyboardInterrupt if the VM runs code, else a REPL byte."""
        if self._catching():
            # The unix port exits on a second SIGINT that arrives before it handled the first;
            # a board just raises KeyboardInterrupt, so SIGINTs are spaced out.
            if time.monotonic() - self.last_sigint > _SIGINT_INTERVAL_S:
                self._sigint()
            else:
                self.pending_interrupt = True
        elif self.filter.phase == "boot":
            self.pending_interrupt = True  # boot.py/main.py are about to run
        else:
            self._write_child(b"\x03")  # at a prompt: the REPL handles it as a byte

    def _poll_interrupt(self) -> None:
        """Deliver a held Ctrl-C once the VM can take it; drop it if its target is gone."""
        if not self.pending_interrupt:
            return
        if self._catching():
            if time.monotonic() - self.last_sigint > _SIGINT_INTERVAL_S:
                self._sigint()
        elif self.filter.phase != "boot":
            self.pending_interrupt = False  # the code it was meant for has finished

    def _to_child(self, data: bytes) -> None:
        _debug("host>", data, "ready" if self._ready() else "queued")
        if not self._ready():
            if b"\x03" in data and self.child is not None and self.filter.phase == "boot":
                # Ctrl-C acts at once, even while the rest waits for the raw REPL to return:
                # it is how a host stops a boot.py that never ends.
                self.pending_interrupt = True
                data = data.replace(b"\x03", b"")
            self.queued += data
            return
        if b"\x03" in data:
            parts = data.split(b"\x03")
            for part in parts[:-1]:
                self._write_child(part)
                self._ctrl_c()
            data = parts[-1]
        self._write_child(data)

    def _write_child(self, data: bytes) -> None:
        if not data:
            return
        try:
            os.write(self.inner, data)
        except OSError:
            self.queued += data  # the VM is going away; give it to the next one

    # --- clients ------------------------------------------------------------------------

    def broadcast(self, data: bytes) -> None:
        if not data:
            return
        self.pty_out += data
        self._flush_pty()
        if self.tcp is not None:
            self.tcp.send(data)

    def _flush_pty(self) -> None:
        """Move pending output into the pty as fast as its reader takes it.

        A reader that keeps up gets every byte (the VM waits while more than _PTY_BACKLOG
        bytes are pending, as a board waits on a full USB buffer). When nobody has read
        anything for _PTY_STALL_S, the port counts as unread: what waits is discarded, and
        output that does not fit is dropped until a reader shows up, as a UART with no one
        listening loses it, so the VM never slows down for an unread port.
        """
        while self.pty_out:
            try:
                n = os.write(self.outer, self.pty_out[:4096])
            except BlockingIOError:
                break
            self.pty_written += n
            del self.pty_out[:n]
        if not self.pty_out:
            self.pty_stalled_at = None
            return
        unread = array.array("i", [0])
        fcntl.ioctl(self.outer_slave, termios.FIONREAD, unread)
        consumed = self.pty_written - unread[0]
        now = time.monotonic()
        if consumed != self.pty_consumed:  # a reader is taking output
            self.pty_consumed, self.pty_stalled_at, self.pty_unread = consumed, now, False
        elif self.pty_unread:
            self.pty_out.clear()
        elif self.pty_stalled_at is None:
            self.pty_stalled_at = now
        elif now - self.pty_stalled_at > _PTY_STALL_S:
            termios.tcflush(self.outer_slave, termios.TCIFLUSH)
            self.pty_out.clear()
            self.pty_written = self.pty_consumed = 0
            self.pty_stalled_at, self.pty_unread = None, True
            _debug("pty not read: output dropped until a reader comes")

    # --- state file and main loop --------------------------------------------------------

    def _write_state(self) -> None:
        state = {
            "board": self.board, "pid": os.getpid(), "pty": self.pty_path,
            "tty": str(self.board_dir / TTY_LINK), "tcp": self.tcp_port,
            "child": self.child.pid if self.child else None, "restarts": self.restarts,
            "up": self.ever_up,
            "micropython": self.micropython, "heap": self.heap,
        }
        relay.write_state(self.board_dir / STATE_FILE, state)

    def _cleanup_files(self) -> None:
        relay.remove_state(self.board_dir / STATE_FILE)  # unless a newer supervisor owns it
        try:
            (self.board_dir / TTY_LINK).unlink()
        except OSError:
            pass

    def serve(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        link = self.board_dir / TTY_LINK
        link.unlink(missing_ok=True)
        link.symlink_to(self.pty_path)
        self.spawn(raw=False)
        try:
            self._loop()
        finally:
            self.stopping = True
            self._kill_child()
            self._cleanup_files()
            if self.tcp is not None:
                self.tcp.drop()
            for fd in (self.outer, self.outer_slave):
                os.close(fd)

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _loop(self) -> None:
        while not self.stopping:
            self._flush_pty()
            fds = [self.outer]
            if self.inner >= 0 and len(self.pty_out) < _PTY_BACKLOG:
                fds.append(self.inner)
            fds += self.tcp.readers() if self.tcp else []
            try:
                busy = self.pending_interrupt or self.pty_out
                ready, _, _ = select.select(fds, [], [], 0.01 if busy else 0.25)
            except InterruptedError:
                continue
            self._poll_interrupt()
            for item in ready:
                if self.tcp is not None and self.tcp.owns(item):
                    data = self.tcp.serve(item)  # a new client, or a client's input
                    if data:
                        self._to_child(data)
                elif item == self.outer:
                    try:
                        data = os.read(self.outer, 65536)
                    except (BlockingIOError, OSError):
                        data = b""
                    if data:
                        self._to_child(data)
                elif item == self.inner and self.inner >= 0:
                    self._from_child()
            if self.inner < 0 and not self.stopping:
                self.spawn(raw=self.filter.raw_mode)
            if self.parent.gone():
                self.stopping = True  # whoever started us is gone: do not linger

    def _kill_child(self) -> None:
        child = self.child
        if child is None:
            return
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                break
            try:
                child.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self.inner >= 0:
            os.close(self.inner)
            self.inner = -1
        self.child = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="virtual board supervisor (internal)")
    parser.add_argument("--board", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--micropython", required=True)
    parser.add_argument("--heap", required=True, type=int)
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--parent", type=int)
    args = parser.parse_args(argv)
    os.umask(0o077)   # the VM inherits it: every file the node writes (its key) is 0600
    args.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    sup = Supervisor(board=args.board, board_dir=args.dir, micropython=args.micropython,
                     heap=args.heap, tcp=args.tcp, parent=args.parent)
    sup.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
