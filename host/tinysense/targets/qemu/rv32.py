"""The RV32 QEMU board: MicroPython's ports/qemu with our ESP32-C3-class board, as a target.

    from tinysense.targets.qemu.rv32 import ensure_rv32, stop_rv32
    rb, started = ensure_rv32("ESP32_GENERIC_C3", parent_bound=True)
    ... mpremote connect rb.url (socket://127.0.0.1:N) ...
    stop_rv32("ESP32_GENERIC_C3")

`make nodes` builds build/micropython/qemu-rv32/firmware.elf (ports/qemu-c3/); Debian's
qemu-system-riscv32 runs it on the `virt` machine with `-icount shift=0` (one instruction is
one nanosecond of the node's time, so time.ticks_us() deltas x 1000 are instructions).

Each running board is one supervisor process (`python -m tinysense.targets.qemu.rv32`) that
owns the board's TCP port on 127.0.0.1 and runs QEMU with its UART on stdin/stdout, relaying bytes
between the two. Its working directory ($TINYSENSE_HOME/qemu-rv32/<BOARD>/) holds flash.img
(littlefs, mounted at / through semihosting, kept across resets and restarts like a board's
flash), romfs.img (mounted at /rom when QEMU starts, if present), qemu.log and rv32.json (the
supervisor's state). machine.reset() exits QEMU; the supervisor starts it again, so the host
stays connected across the reset as it does to a board through a USB-UART bridge.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tinysense.boards import BoardConfig, load_board
from tinysense.errors import TinysenseError
from tinysense.paths import CHECKOUT, NODE_BUILD_DIR, REPO_ROOT
from tinysense.targets import relay

QEMU_BINARY = "qemu-system-riscv32"
FIRMWARE = NODE_BUILD_DIR / "qemu-rv32" / "firmware.elf"
MPY_ARCH = "rv32imc"
FLASH_IMAGE = "flash.img"
FLASH_SIZE = 2 << 20
ROMFS_IMAGE = "romfs.img"
ROMFS_ADDR = 0x80610000  # MICROPY_HW_ROMFS_PART0_START in ports/qemu-c3/board/mpconfigboard.mk
ROMFS_MAX = 4 << 20  # MICROPY_HW_ROMFS_PART0_SIZE
STATE_FILE = "rv32.json"
C3_MHZ = 160  # an ESP32-C3's clock: instructions / 160e6 s is a lower bound on its latency
NOT_BUILT = ("the RV32 QEMU board is not built ({path} is missing); build it with "
             + ("`make nodes`" if CHECKOUT else "`make nodes` in a tinysense checkout and set "
                "TINYSENSE_RV32_FIRMWARE to its build/micropython/qemu-rv32/firmware.elf"))

_START_TIMEOUT_S = 60.0  # a busy 2-core host may be slow to start QEMU
_STOP_TIMEOUT_S = 5.0
_HOLD_INPUT_S = 1.0  # after a (re)start, input waits for the first output or this long
_MAX_FAILED_STARTS = 3
_FAST_EXIT_S = 2.0
_MARKER = b"tinysense.targets.qemu.rv32"  # in a supervisor's command line


@dataclasses.dataclass(frozen=True)
class RV32Info:
    """Whether the RV32 board can run here: the QEMU executable and the firmware ELF."""

    qemu: str | None
    firmware: Path
    reason: str

    @property
    def usable(self) -> bool:
        return self.qemu is not None and self.firmware.is_file()


def firmware_path() -> Path:
    """The RV32 firmware: $TINYSENSE_RV32_FIRMWARE, else `make nodes`' (FIRMWARE)."""
    env = os.environ.get("TINYSENSE_RV32_FIRMWARE")
    return Path(env) if env else FIRMWARE


def detect_rv32() -> RV32Info:
    """Look for the built firmware and Debian's qemu-system-riscv32 (nothing is started)."""
    elf = firmware_path()
    if not elf.is_file():
        return RV32Info(None, elf, NOT_BUILT.format(path=_short(elf)))
    qemu = shutil.which(QEMU_BINARY)
    if qemu is None:
        return RV32Info(None, elf, f"{QEMU_BINARY} not found (Debian package qemu-system-misc;"
                        " `make nodes` installs it)")
    return RV32Info(qemu, elf, f"RV32 QEMU board ({_short(elf)}, {QEMU_BINARY} -machine virt)")


def _short(path: Path) -> str:
    """`path` relative to the checkout when it is inside it, else as it is."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT.resolve())) if CHECKOUT else str(path)
    except ValueError:
        return str(path)


def check_board(cfg: BoardConfig) -> None:
    """The RV32 board is ESP32-C3-class (rv32imc code, the C3's heap): other boards cannot be
    emulated by it. Raises TinysenseError saying which --board to use."""
    if cfg.mpy_arch != MPY_ARCH:
        raise TinysenseError(f"the RV32 QEMU board is ESP32-C3-class ({MPY_ARCH}); board "
                             f"{cfg.name} runs {cfg.mpy_arch} code: use --board "
                             "ESP32_GENERIC_C3")


def board_config(cfg: BoardConfig) -> BoardConfig:
    """`cfg` (ESP32_GENERIC_C3) as the RV32 QEMU board is: the C3's arch and heap budget, plus
    the board's ROMFS partition (ROMFS_MAX bytes at ROMFS_ADDR in its memory map, loaded from
    romfs.img), which a stock ESP32_GENERIC_C3 build lacks. The converter then plans ROMFS
    placement for this node, and validate puts packages there (tinysense.flash.romfs)."""
    if cfg.romfs_size:
        return cfg
    return dataclasses.replace(
        cfg, romfs_offset=ROMFS_ADDR, romfs_size=ROMFS_MAX,
        description=f"{cfg.description}; as the RV32 QEMU board: {ROMFS_MAX >> 20} MiB ROMFS "
                    f"partition at {ROMFS_ADDR:#x}")


def qemu_command(qemu: str, firmware: Path, romfs: Path | None = None) -> list[str]:
    """QEMU's command line: the `virt` machine, UART on stdin/stdout, semihosting for the
    flash file, deterministic instruction counting, ROMFS loaded at its partition address."""
    cmd = [qemu, "-machine", "virt", "-bios", "none", "-cpu", "rv32", "-semihosting",
           "-display", "none", "-monitor", "none", "-serial", "stdio",
           "-icount", "shift=0", "-kernel", str(firmware)]
    if romfs is not None:
        cmd += ["-device", f"loader,file={romfs},addr={ROMFS_ADDR:#x},force-raw=on"]
    return cmd


def instructions(node_ms: float) -> int:
    """Instructions executed in `node_ms` of the RV32 board's time (1 instruction = 1 ns)."""
    return round(node_ms * 1e6)


def c3_lower_bound_ms(count: int) -> float:
    """The fastest an ESP32-C3 at 160 MHz could run `count` instructions (CPI >= 1), in ms."""
    return count / (C3_MHZ * 1e3)


# --- the supervisor -------------------------------------------------------------------------

class Supervisor:
    """Runs QEMU for one board directory behind a TCP port, restarting it when it exits."""

    def __init__(self, *, board: str, workdir: Path, qemu: str, firmware: Path, tcp: int,
                 parent: int | None = None) -> None:
        self.board, self.workdir, self.qemu, self.firmware = board, workdir, qemu, firmware
        self.parent = relay.ParentWatch(parent)
        self.stopping = False
        self.proc: subprocess.Popen | None = None
        self.to_qemu = bytearray()  # client input not yet taken by QEMU
        self.hold_until = 0.0  # input waits until QEMU printed something (or this time)
        self.got_output = False
        self.ever_up = False
        self.failed_starts = 0
        self.restarts = 0
        self.started_at = 0.0
        self.tcp = relay.TcpPort(tcp, "choose another with --tcp, or leave it out for a free one")
        self.tcp_port = self.tcp.port
        self.log = open(workdir / "qemu.log", "ab")  # noqa: SIM115 (closed in serve)

    def _note(self, text: str) -> None:
        self.log.write(f"{time.strftime('%H:%M:%S')} {text}\n".encode())
        self.log.flush()

    def spawn(self) -> None:
        flash = self.workdir / FLASH_IMAGE
        if not flash.exists() or flash.stat().st_size == 0:
            with open(flash, "wb") as f:
                f.truncate(FLASH_SIZE)  # the board formats it with littlefs at first boot
        romfs = self.workdir / ROMFS_IMAGE
        romfs = romfs if romfs.is_file() and 0 < romfs.stat().st_size <= ROMFS_MAX else None
        cmd = qemu_command(self.qemu, self.firmware, romfs)
        self._note(f"$ {shlex.join(cmd)}")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, cwd=self.workdir, close_fds=True)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.started_at = time.monotonic()
        self.hold_until = self.started_at + _HOLD_INPUT_S
        self.got_output = False
        self._write_state()

    def _qemu_exited(self) -> None:
        proc, self.proc = self.proc, None
        rc = proc.wait()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        if self.stopping:
            return
        self._note(f"QEMU exited with status {rc} (machine.reset() exits it); restarting")
        if not self.got_output and time.monotonic() - self.started_at < _FAST_EXIT_S:
            self.failed_starts += 1
            if self.failed_starts >= _MAX_FAILED_STARTS:
                self._note(f"QEMU exited {self.failed_starts} times before printing anything; "
                           "giving up (see the lines above)")
                print(f"QEMU exited with status {rc} {self.failed_starts} times at start; see "
                      f"{self.workdir / 'qemu.log'}", file=sys.stderr, flush=True)
                self.stopping = True
                return
            time.sleep(0.2 * self.failed_starts)
        else:
            self.failed_starts = 0
        self.restarts += 1
        self.spawn()

    def _from_qemu(self) -> None:
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            self._qemu_exited()
            return
        if not self.got_output:
            self.got_output = True
            if not self.ever_up:
                self.ever_up = True
                self._write_state()  # ensure_rv32() waits for this
        self.tcp.send(data)

    def _flush_to_qemu(self) -> None:
        if not self.to_qemu or self.proc is None:
            return
        if not self.got_output and time.monotonic() < self.hold_until:
            return  # a Ctrl-C now would interrupt the board's _boot.py (mounting the flash)
        try:
            n = os.write(self.proc.stdin.fileno(), self.to_qemu)
        except BlockingIOError:
            return
        except OSError:
            return  # QEMU is going away; the next one gets it
        del self.to_qemu[:n]

    def _write_state(self) -> None:
        state = {"board": self.board, "pid": os.getpid(), "tcp": self.tcp_port,
                 "qemu": self.proc.pid if self.proc else None, "restarts": self.restarts,
                 "up": self.ever_up, "firmware": str(self.firmware)}
        relay.write_state(self.workdir / STATE_FILE, state)

    def serve(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: setattr(self, "stopping", True))
        self.spawn()
        try:
            self._loop()
        finally:
            self.stopping = True
            self._kill_qemu()
            self.tcp.drop()
            relay.remove_state(self.workdir / STATE_FILE)  # unless a newer supervisor owns it
            self.log.close()

    def _loop(self) -> None:
        while not self.stopping:
            if self.proc is None:
                self.spawn()
            readers = [*self.tcp.readers(take_input=len(self.to_qemu) < 65536),
                       self.proc.stdout]
            writers = [self.proc.stdin] if self.to_qemu and self.got_output else []
            try:
                ready, writable, _ = select.select(readers, writers, [],
                                                   0.05 if self.to_qemu else 0.5)
            except InterruptedError:
                continue
            for item in ready:
                if self.tcp.owns(item):
                    self.to_qemu += self.tcp.serve(item)  # a new client, or a client's input
                elif self.proc is not None and item is self.proc.stdout:
                    self._from_qemu()
            self._flush_to_qemu()
            if self.parent.gone():
                self.stopping = True  # whoever started us is gone: do not linger

    def _kill_qemu(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the library side: start, find, stop ------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RV32Board:
    """A running RV32 board, as its supervisor describes it."""

    board: str
    workdir: Path
    pid: int  # the supervisor
    tcp_port: int
    qemu: int | None  # the current QEMU process (changes on every machine.reset())
    restarts: int = 0
    up: bool = True

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.tcp_port}"

    @property
    def flash_image(self) -> Path:
        return self.workdir / FLASH_IMAGE

    @property
    def romfs_image(self) -> Path:
        """Where a ROMFS image goes to be mounted at /rom (from the next QEMU start on)."""
        return self.workdir / ROMFS_IMAGE


def workdir_for(board: str, directory: str | os.PathLike | None = None) -> Path:
    """The board's directory: `directory`, else $TINYSENSE_HOME/qemu-rv32/<board>."""
    if directory is not None:
        return Path(directory).resolve()
    from tinysense.targets.virtual import state_dir

    return state_dir() / "qemu-rv32" / board


def running_rv32(board: str, directory: str | os.PathLike | None = None) -> RV32Board | None:
    """The running RV32 board in `board`'s directory, or None."""
    wdir = workdir_for(board, directory)
    state = relay.read_state(wdir / STATE_FILE, _MARKER)
    if state is None:
        return None
    return RV32Board(board=state["board"], workdir=wdir, pid=state["pid"], tcp_port=state["tcp"],
                     qemu=state.get("qemu"), restarts=state.get("restarts", 0),
                     up=bool(state.get("up")))


def running_rv32_boards() -> list[RV32Board]:
    from tinysense.targets.virtual import state_dir

    root = state_dir() / "qemu-rv32"
    found = [running_rv32(p.name, p) for p in sorted(root.glob("*")) if p.is_dir()]
    return [rb for rb in found if rb is not None]


_known: dict[str, RV32Board] = {}  # url -> board, for boards this process started or found


def board_for_url(url: str | None) -> RV32Board | None:
    """The RV32 board serving `url`: one this process started or found, else a running one
    under $TINYSENSE_HOME/qemu-rv32/."""
    rb = _known.get(url or "")
    if rb is not None and relay.alive(rb.pid, _MARKER):
        return rb
    return next((b for b in running_rv32_boards() if b.url == url), None)


def ensure_rv32(board: str | BoardConfig = "ESP32_GENERIC_C3", *, tcp: int | None = None,
                directory: str | os.PathLike | None = None, parent_bound: bool = False
                ) -> tuple[RV32Board, bool]:
    """The running RV32 board, or a new one: (board, True if this call started it).

    Raises:
        TinysenseError: not built (`make nodes`), no QEMU, a board that is not C3-class, the
            TCP port in use, or QEMU did not come up.
    """
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    check_board(cfg)
    info = detect_rv32()
    if not info.usable:
        raise TinysenseError(info.reason)
    wdir = workdir_for(cfg.name, directory)
    wdir.mkdir(parents=True, exist_ok=True)
    with relay.start_lock(wdir):
        current = running_rv32(cfg.name, wdir)
        started = current is None
        if started:
            current = _start_locked(cfg, wdir, info, tcp, parent_bound)
        _known[current.url] = current
        return current, started


def _start_locked(cfg: BoardConfig, wdir: Path, info: RV32Info, tcp: int | None,
                  parent_bound: bool) -> RV32Board:
    if tcp:
        from tinysense.targets.qemu.runner import _check_port_free

        _check_port_free(tcp)
    (wdir / STATE_FILE).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tinysense.targets.qemu.rv32", "--board", cfg.name,
           "--dir", str(wdir), "--qemu", info.qemu, "--firmware", str(info.firmware.resolve()),
           "--tcp", str(tcp or 0)]
    if parent_bound:
        cmd += ["--parent", str(os.getpid())]
    return relay.start_supervisor(
        cmd, wdir / "supervisor.log", lambda: running_rv32(cfg.name, wdir),
        what="RV32 QEMU board", timeout=_START_TIMEOUT_S, stop_timeout=_STOP_TIMEOUT_S * 2,
        marker=_MARKER, hint=f"; see {wdir / 'qemu.log'}", poll=0.05)


def stop_rv32(board: str | BoardConfig = "ESP32_GENERIC_C3",
              directory: str | os.PathLike | None = None) -> RV32Board | None:
    """Stop the board's supervisor and its QEMU; return what was stopped (None: not running)."""
    name = board.name if isinstance(board, BoardConfig) else load_board(board).name
    rb = running_rv32(name, directory)
    if rb is None:
        return None
    relay.terminate(rb.pid, _MARKER, timeout=_STOP_TIMEOUT_S * 2, poll=0.05)
    return rb


def hard_reset(node, timeout: float = 60.0) -> None:
    """machine.reset() on an RV32 node (QEMU restarts: a new romfs.img is mounted), then back
    into its raw REPL on the same connection."""
    from mpremote.transport import TransportError

    node.transport.exec_raw_no_follow("import machine\nmachine.reset()")
    deadline, last = time.monotonic() + timeout, ""
    time.sleep(0.5)
    while time.monotonic() < deadline:
        try:
            node.transport.enter_raw_repl(soft_reset=False, timeout_overall=10)
            return
        except (TransportError, OSError) as exc:
            last = str(exc)
            time.sleep(0.5)
    raise TinysenseError(f"the RV32 node on {node.target.url} did not come back from "
                         f"machine.reset() within {timeout:g} s ({last})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RV32 QEMU board supervisor (internal)")
    parser.add_argument("--board", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--qemu", required=True)
    parser.add_argument("--firmware", required=True, type=Path)
    parser.add_argument("--tcp", type=int, default=0)
    parser.add_argument("--parent", type=int)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    Supervisor(board=args.board, workdir=args.dir, qemu=args.qemu, firmware=args.firmware,
               tcp=args.tcp, parent=args.parent).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
