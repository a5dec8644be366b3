"""Talk to a node over its raw REPL: exec code, move files, reset, deploy.

    from tinysense.node import open_node
    with open_node(target="virtual", board="ESP32_GENERIC") as node:
        node.exec("print(1)", timeout=10)   # -> "1\\n"
        node.put(b"data", "/x.bin"); node.get("/x.bin")
        node.deploy()

Every target (serial board, QEMU, virtual board) is reached through mpremote's
SerialTransport, which opens any pyserial URL. Output text is returned with CRLF turned into
LF, so callers see the same text from a board and from the virtual board.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from tinysense.boards import BoardConfig, load_board
from tinysense.errors import TinysenseError
from tinysense.node.snippets import script
from tinysense.node.rawrepl import Pushback, RawRepl, RawReplTimeout
from tinysense.targets import Target, node_board, resolve_target


_PUT_CHUNK = 2048  # bytes per exec when writing a file (2.7 KB of base64 on the wire)


class NodeError(TinysenseError):
    """Code on the node raised. `traceback` is the node's traceback text, `output` its stdout."""

    def __init__(self, traceback: str, output: str = "", code: str = "") -> None:
        self.traceback = traceback
        self.output = output
        self.code = code
        last = traceback.strip().splitlines()[-1:] or ["(no traceback)"]
        super().__init__(f"the node raised {last[0]}\n{traceback.rstrip()}")


class NodeTimeout(TinysenseError):
    """The node stopped answering (code still running, or the port went away)."""


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n")


class Node:
    """A connected node in the raw REPL. Create with open_node()."""

    def __init__(self, target: Target, board: BoardConfig, transport) -> None:
        self.target = target
        self.board = board
        self.timeout_scale = target.timeout_scale  # every wait below is this many times longer
        self.transport = transport  # mpremote's SerialTransport: fs helpers, raw REPL entry

    @property
    def transport(self):
        return self._transport

    @transport.setter
    def transport(self, transport) -> None:
        """A (new) mpremote transport, e.g. after a reconnect; exec reads its port in bulk."""
        if not isinstance(transport.serial, Pushback):
            transport.serial = Pushback(transport.serial)
        self._transport = transport
        self.repl = RawRepl(transport.serial, timeout=10 * self.timeout_scale)

    # --- code ---------------------------------------------------------------------------

    def exec(self, code: str | bytes, timeout: float = 10) -> str:
        """Run code in the node's raw REPL and return its stdout.

        Args:
            code: MicroPython source.
            timeout: seconds a board may stay silent (the limit restarts with each output
                byte, so long-running code that prints progress can run longer); an emulated
                node gets target.timeout_scale times as long.

        Raises:
            NodeError: the code raised (the node's traceback is in the message).
            NodeTimeout: no complete answer in time.
        """
        data = code.encode() if isinstance(code, str) else bytes(code)
        timeout *= self.timeout_scale
        try:
            self.repl.send(data)
        except RawReplTimeout as exc:
            raise NodeTimeout(f"the node on {self.target.url} did not take the code (received "
                              f"{exc.args[0][-80:]!r}); is it still running something?") from None
        try:
            out, err = self.repl.follow(timeout)
        except RawReplTimeout as exc:
            raise NodeTimeout(f"no answer from the node on {self.target.url} within "
                              f"{timeout:g} s (received {exc.args[0][-80:]!r}); is it running "
                              "long code or gone?") from None
        if err:
            raise NodeError(_text(err), _text(out), code if isinstance(code, str) else "")
        return _text(out)

    def eval(self, expr: str, timeout: float = 10):
        """Evaluate a literal-valued expression on the node and return it as a Python value."""
        import ast

        return ast.literal_eval(self.exec(f"print(repr({expr}))", timeout).strip())

    # --- files --------------------------------------------------------------------------

    def put(self, src: str | os.PathLike | bytes, remote: str,
            progress: Callable[[int, int], None] | None = None) -> None:
        """Write a local file (path) or bytes to `remote` on the node (its directory must exist).

        Sent as base64 in 2 KB chunks, one raw-paste exec each: 1.33x the bytes on the wire
        (repr of binary data is ~3.5x), and little heap on the node.
        """
        data = bytes(src) if isinstance(src, (bytes, bytearray, memoryview)) else \
            Path(src).read_bytes()
        with self._fs_errors(remote):  # a put cut short earlier left its file open: close it
            self.exec("import binascii\ntry:\n    _tsf.close()\nexcept NameError:\n    pass\n"
                      f"_tsf = open({remote!r}, 'wb')")
        try:
            for offset in range(0, len(data), _PUT_CHUNK):
                chunk = base64.b64encode(data[offset:offset + _PUT_CHUNK])
                self.exec(f"_tsf.write(binascii.a2b_base64({chunk!r}))")
                if progress:
                    progress(min(offset + _PUT_CHUNK, len(data)), len(data))
        finally:
            self.exec("_tsf.close()\ndel _tsf")

    def get(self, remote: str, timeout: float = 30) -> bytes:
        """The content of `remote` on the node."""
        with self._fs_errors(remote):
            return base64.b64decode(self.exec(script("get", path=remote), timeout=timeout))

    def ls(self, remote: str = "/") -> list[tuple[str, bool]]:
        """Entries of a node directory as (name, is_dir), sorted by name."""
        names = self.eval(f"[(e[0], e[1] == 0x4000) for e in __import__('os').ilistdir("
                          f"{remote!r})]")
        return sorted((name, bool(is_dir)) for name, is_dir in names)

    def exists(self, remote: str) -> bool:
        code = (f"import os\ntry:\n os.stat({remote!r}); print(True)\n"
                f"except OSError:\n print(False)")
        return self.exec(code).strip() == "True"

    def mkdir(self, remote: str) -> None:
        """Create a directory and its parents (no error if it exists)."""
        parts = [p for p in remote.strip("/").split("/") if p]
        paths = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
        self.exec(f"import os\nfor p in {paths!r}:\n try:\n  os.mkdir(p)\n except OSError:\n"
                  "  pass")

    def remove(self, remote: str) -> None:
        with self._fs_errors(remote):
            self.exec(f"import os\nos.remove({remote!r})")

    def sha256(self, remote: str) -> str | None:
        """Hex sha256 of a node file, or None if it does not exist."""
        return self.sha256_many([remote])[remote]

    def sha256_many(self, remotes: list[str]) -> dict[str, str | None]:
        """Hex sha256 of several node files in one exec (None for missing files)."""
        code = script("sha256", paths=list(remotes))
        result: dict[str, str | None] = {}
        for line in self.exec(code, timeout=30).splitlines():
            path, _, digest = line.rpartition(" ")
            if path:
                result[path] = None if digest == "-" else digest
        return {r: result.get(r) for r in remotes}

    @contextlib.contextmanager
    def _fs_errors(self, remote: str) -> Iterator[None]:
        try:
            yield
        except NodeError as exc:
            if "OSError" not in exc.traceback:
                raise
            reason = exc.traceback.strip().splitlines()[-1].replace("OSError: ", "")
            if "ENOENT" in reason:
                reason += " (no such file or directory on the node)"
            raise TinysenseError(f"node file {remote}: {reason}") from None

    # --- control ------------------------------------------------------------------------

    def soft_reset(self, timeout: float = 15) -> None:
        """Soft-reset the node (boot.py runs again; main.py does not, as in the raw REPL) and
        return in its raw REPL."""
        from mpremote.transport import TransportError

        try:
            self.transport.enter_raw_repl(soft_reset=True,
                                          timeout_overall=timeout * self.timeout_scale)
        except TransportError as exc:
            raise NodeTimeout(f"node on {self.target.url} did not come back from a soft "
                              f"reset ({exc})") from None

    def deploy(self, **kwargs):
        """Compile firmware/ for this node and copy what changed (see tinysense.node.deploy)."""
        from tinysense.node.deploy import deploy

        return deploy(self, **kwargs)

    def close(self) -> None:
        try:
            if self.transport.in_raw_repl:
                self.transport.exit_raw_repl()
        except OSError:
            pass
        self.transport.close()


def no_delay(transport) -> None:
    """TCP_NODELAY on a socket:// port (QEMU, a virtual board's TCP port, a network bridge):
    the raw REPL is many small writes each waiting for an answer, and Nagle's algorithm holds
    each small write back until the last is acknowledged (pyserial leaves it on)."""
    sock = getattr(getattr(transport, "serial", None), "_socket", None)
    if sock is not None:
        import socket
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def connect(url: str, target: Target, board: BoardConfig, *, soft_reset: bool = True,
            timeout: float = 15) -> Node:
    """Open a pyserial URL with mpremote's transport and enter the raw REPL."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        transport = SerialTransport(url, baudrate=board.console_baud)
    except TransportError as exc:
        raise TinysenseError(f"cannot open {url}: {exc}; is another program (a serial "
                             "monitor, mpremote) using it?") from None
    no_delay(transport)
    try:
        transport.enter_raw_repl(soft_reset=soft_reset,
                                 timeout_overall=timeout * target.timeout_scale)
    except (TransportError, OSError) as exc:
        transport.close()
        raise TinysenseError(f"no MicroPython raw REPL on {url} ({exc}); is MicroPython "
                             "flashed, and the baud rate right?") from None
    return Node(target, board, transport)


@contextlib.contextmanager
def open_node(target: str | Target | None = None, board: str | BoardConfig | None = None, *,
              soft_reset: bool = True, timeout: float = 15) -> Iterator[Node]:
    """Connect to a node for the duration of a `with` block.

    Args:
        target: auto | virtual | qemu | a port or pyserial URL (see resolve_target), or a
            resolved Target. None: $TINYSENSE_TARGET, else auto.
        board: board id, TOML path or config; None: $TINYSENSE_BOARD, else ESP32_GENERIC.
        soft_reset: soft-reset on connect for a clean interpreter (as mpremote does).
        timeout: seconds to wait for the raw REPL.

    A 'virtual' target starts a virtual board with this board's heap and stops it afterwards,
    unless one is already running for the board (then it is used and left running). A 'qemu'
    target boots $TINYSENSE_FIRMWARE in Espressif's QEMU for the block. A 'qemu-rv32' target
    uses the running RV32 QEMU board, or starts it (its flash kept in $TINYSENSE_HOME/qemu-rv32/)
    for the block.
    """
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    resolved = target if isinstance(target, Target) else resolve_target(target, cfg)
    cfg = node_board(resolved.kind, cfg)   # node.board: the RV32 QEMU board has a ROMFS
    with contextlib.ExitStack() as stack:
        url = resolved.url
        if resolved.kind == "virtual" and url is None:
            from tinysense.targets.virtual import ensure_board, stop_board, use_lock

            stack.enter_context(use_lock(cfg.name))   # one client at a time: the rest wait
            board_vm, started = ensure_board(cfg.path, parent_bound=True)
            if started:
                stack.callback(stop_board, cfg.path)
            url = board_vm.url
        elif resolved.kind == "qemu" and url is None:
            from tinysense.targets.qemu.runner import QemuNode

            firmware = os.environ.get("TINYSENSE_FIRMWARE")
            if not firmware:
                raise TinysenseError("a qemu target needs a firmware image: set "
                                     "TINYSENSE_FIRMWARE (or pass --firmware to pytest)")
            qemu = stack.enter_context(QemuNode(cfg, firmware))
            url = qemu.url
        elif resolved.kind == "qemu-rv32" and url is None:
            from tinysense.targets.qemu.rv32 import ensure_rv32, stop_rv32

            rv32, started = ensure_rv32(cfg, parent_bound=True)
            if started:
                stack.callback(stop_rv32, cfg)
            url = rv32.url
        resolved = Target(resolved.kind, url, resolved.reason)
        node = connect(url, resolved, cfg, soft_reset=soft_reset, timeout=timeout)
        stack.callback(node.close)
        yield node
