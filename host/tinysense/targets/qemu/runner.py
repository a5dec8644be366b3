"""Start Espressif's QEMU on a board's flash image, wait for the REPL, and stop it cleanly."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from pathlib import Path

from tinysense.boards import BoardConfig, load_board
from tinysense.errors import TinysenseError
from tinysense.paths import STATE_DIR
from tinysense.targets.qemu.image import build_flash_image
from tinysense.targets.qemu.machines import find_qemu, machine_for, qemu_command
from tinysense.targets.qemu.prompt import wait_for_prompt

_STOP_GRACE_S = 5.0


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise TinysenseError(f"TCP port {port} is already in use; pick another with "
                                 "--tcp PORT or leave it out to use a free one") from None


def _install_hint(board: BoardConfig) -> str:
    spec = machine_for(board)
    return (f"{spec.binary} not found (looked in $TINYSENSE_QEMU_DIR, PATH and "
            f"~/.espressif/tools/{spec.tool}); install Espressif's QEMU with "
            f"`python $IDF_PATH/tools/idf_tools.py install qemu-xtensa qemu-riscv32`")


class QemuNode:
    """One QEMU process emulating `board`, its UART0 on `socket://127.0.0.1:<tcp_port>`.

    Use as a context manager, or call start() and stop(). The flash image lives in
    `workdir` (default STATE_DIR/qemu/<board>/flash.bin) and keeps what the node writes
    to its filesystem until the next fresh start.
    """

    def __init__(self, board: BoardConfig | str, firmware: str | os.PathLike,
                 tcp_port: int | None = None, workdir: str | os.PathLike | None = None,
                 executable: str | os.PathLike | None = None, fresh: bool = True):
        self.board = board if isinstance(board, BoardConfig) else load_board(board)
        machine_for(self.board)  # fail early on a chip QEMU does not emulate
        self.firmware = Path(firmware)
        self.tcp_port = tcp_port
        self.workdir = Path(workdir) if workdir else STATE_DIR / "qemu" / self.board.name
        self.executable = executable
        self.fresh = fresh
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "qemu.log"
        self.console_log = self.workdir / "console.log"

    @property
    def flash_image(self) -> Path:
        return self.workdir / "flash.bin"

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.tcp_port}"

    def command(self) -> list[str]:
        """The QEMU command line (the executable is resolved at start)."""
        if self.tcp_port is None:
            self.tcp_port = free_tcp_port()
        return qemu_command(self.board, self.flash_image, self.tcp_port, self.executable)

    def start(self, timeout: float = 90.0) -> QemuNode:
        """Build the flash image, start QEMU and return once the REPL prompt answers."""
        if self.process is not None:
            return self
        if self.executable is None:
            exe = find_qemu(self.board.chip)
            if exe is None:
                raise TinysenseError(_install_hint(self.board))
            self.executable = exe
        if self.tcp_port is not None:
            _check_port_free(self.tcp_port)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.fresh or not self.flash_image.exists():
            build_flash_image(self.board, self.firmware, self.flash_image)
        cmd = self.command()
        with open(self.log_path, "wb") as log:
            log.write(f"$ {shlex.join(cmd)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)
            except OSError as exc:
                raise TinysenseError(f"could not run {cmd[0]}: {exc}") from None
        try:
            wait_for_prompt(self.url, timeout, log=self.console_log, alive=self._why_dead)
        except BaseException:
            self.stop()
            raise
        return self

    def _why_dead(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
        return (f"QEMU exited with status {self.process.returncode} before the REPL "
                f"prompt: {' | '.join(tail)} (full log: {self.log_path})")

    def stop(self) -> None:
        """Terminate QEMU (SIGTERM, then SIGKILL after a grace period); safe to call twice."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> QemuNode:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_qemu(board: BoardConfig | str, firmware: str | os.PathLike,
               tcp_port: int | None = None, timeout: float = 90.0, **kwargs) -> QemuNode:
    """Start QEMU for `board` booting `firmware`; returns the running QemuNode (call stop())."""
    return QemuNode(board, firmware, tcp_port=tcp_port, **kwargs).start(timeout)
