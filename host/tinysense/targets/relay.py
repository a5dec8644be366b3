"""What both board supervisors share: start/find/stop one, its state file, its one TCP client.

The virtual board (targets/supervisor.py, client side targets/virtual.py) and the RV32 QEMU
board (targets/qemu/rv32.py) each run as one background process per board directory that
writes a JSON state file there. The library side starts it under a lock (`start_lock`,
`start_supervisor`), finds it (`read_state`, `alive`) and stops it (`terminate`); the
supervisor side writes and removes its state file (`write_state`, `remove_state`), serves
one TCP client on 127.0.0.1 (`TcpPort`) and notices when the process that started it is gone
(`ParentWatch`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from tinysense.errors import TinysenseError
from tinysense.paths import IMPORT_ROOT

T = TypeVar("T")

HOST_DIR = str(IMPORT_ROOT)  # host/ in a checkout: `-m` works without an install too
_CLIENT_SEND_TIMEOUT_S = 5.0
_children: dict[int, subprocess.Popen] = {}  # supervisors this process started (to reap them)


# --- the library side: start, find, stop ---------------------------------------------------

def alive(pid: int, marker: bytes) -> bool:
    """Whether `pid` runs and is the supervisor whose command line holds `marker` (not a
    zombie, not a reused pid); without /proc, kill(0) decides."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust kill(0)


def read_state(path: Path, marker: bytes) -> dict | None:
    """The state a supervisor wrote to `path`, or None: no (readable) file, or its writer
    (the `pid` in it) is not a running supervisor with `marker` in its command line."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if alive(state.get("pid", -1), marker) else None


@contextlib.contextmanager
def start_lock(directory: Path) -> Iterator[None]:
    """One start at a time per board directory (parallel test sessions, tools): whoever comes
    second finds the first one's board running."""
    with open(directory / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start_supervisor(cmd: list[str], log: Path, running: Callable[[], T | None], *,
                     what: str, timeout: float, stop_timeout: float, marker: bytes,
                     hint: str, poll: float = 0.02) -> T:
    """Start `cmd` (a `python -m` supervisor) in its own session, output to `log`, and wait
    until `running()` describes it (its `pid`) as `up`; return that description.

    Raises TinysenseError `what` did not start: with the log's last line if it exited, or
    after `timeout` s (then it is stopped, see terminate) with `hint` appended."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HOST_DIR, env.get("PYTHONPATH")) if p)
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, close_fds=True, env=env)
    _children[proc.pid] = proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = running()
        if found is not None and found.pid == proc.pid and found.up:
            return found
        if proc.poll() is not None:
            _children.pop(proc.pid, None)
            lines = log.read_text(errors="replace").strip().splitlines()
            raise TinysenseError(f"{what} did not start: "
                                 f"{lines[-1] if lines else f'exit status {proc.returncode}'}")
        time.sleep(poll)
    terminate(proc.pid, marker, timeout=stop_timeout, poll=poll)
    raise TinysenseError(f"{what} did not start within {timeout:.0f} s{hint}")


def terminate(pid: int, marker: bytes, *, timeout: float, poll: float = 0.02) -> None:
    """Stop supervisor `pid`: SIGTERM, then SIGKILL if it is still there after `timeout` s
    (its own child is its to stop); reaps it if this process started it."""
    proc = _children.pop(pid, None)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (proc.poll() is not None) if proc is not None else not alive(pid, marker):
                return
            time.sleep(poll)


# --- the supervisor side ---------------------------------------------------------------------

def write_state(path: Path, state: dict) -> None:
    """Replace the state file at `path` in one step (a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def remove_state(path: Path) -> None:
    """Remove the state file at `path` unless a newer supervisor (another pid) owns it."""
    try:
        if json.loads(path.read_text())["pid"] == os.getpid():
            path.unlink()
    except (OSError, ValueError, KeyError):
        pass


class ParentWatch:
    """Whether the process that started this one (`parent`, None: not bound) is gone."""

    def __init__(self, parent: int | None) -> None:
        self.parent = parent
        self.checked = 0.0

    def gone(self) -> bool:
        """Checked at most once a second: True once our parent process is another."""
        now = time.monotonic()
        if not self.parent or now - self.checked <= 1.0:
            return False
        self.checked = now
        return os.getppid() != self.parent


class TcpPort:
    """A listener on 127.0.0.1:`port` (0: any free port) serving one client at a time: the
    newest wins, with TCP_NODELAY; a client that does not take output for
    _CLIENT_SEND_TIMEOUT_S is dropped."""

    def __init__(self, port: int, hint: str) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind(("127.0.0.1", port))
        except OSError as exc:
            self.listener.close()
            raise SystemExit(f"TCP port {port} on 127.0.0.1 is not free ({exc.strerror}); "
                             f"{hint}")
        self.listener.listen(1)
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.client: socket.socket | None = None

    def readers(self, take_input: bool = True) -> list[socket.socket]:
        """What to select() on: the listener, and the client unless input must wait."""
        client = [self.client] if self.client is not None and take_input else []
        return [self.listener, *client]

    def owns(self, item: object) -> bool:
        return item is self.listener or (self.client is not None and item is self.client)

    def serve(self, item: socket.socket) -> bytes:
        """`item` (owned, select() found it readable): accept a new client, or read the
        client's input (b"" when there is none: a new client, or one that went away)."""
        if item is self.listener:
            self._accept()
            return b""
        try:
            data = item.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop()
        return data

    def send(self, data: bytes) -> None:
        if self.client is not None:
            try:
                self.client.sendall(data)
            except OSError:  # gone, or stuck for _CLIENT_SEND_TIMEOUT_S
                self.drop()

    def drop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        self.drop()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(_CLIENT_SEND_TIMEOUT_S)
        self.client = conn

