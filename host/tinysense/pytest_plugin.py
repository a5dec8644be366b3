"""pytest plugin (entry point `pytest11`): run the same tests on a board, QEMU or the virtual board.

Options (each with an environment default, then an ini default):

    --target auto|virtual|qemu|qemu-rv32|<port or URL>
                                                TINYSENSE_TARGET   ini tinysense_target (virtual)
    --board  <board id or .toml>                TINYSENSE_BOARD    ini tinysense_board (ESP32_GENERIC)
    --firmware <MicroPython .bin for QEMU>      TINYSENSE_FIRMWARE

Each also has a long name, `--tinysense-target`, `--tinysense-board`, `--tinysense-firmware`,
`--tinysense-no-deploy`; where another plugin owns a short one (pytest-embedded's `--target`
is the chip) only the long name is registered, and the header says so.

The target is resolved once per session (`tinysense.targets.resolve_target`) and shown in the
pytest header with the reason it was chosen. Fixtures:

- `target`: the resolved Target (kind, url, reason); `board_config`: the BoardConfig;
  `target_option`, `board_option`, `firmware_option`: the raw option values;
- `session_node`: one connection for the session, started (virtual board or QEMU) and with
  firmware/ deployed; `node`: the same node after a fresh soft reset, for each test;
- `dut`: the node's console with `expect(regex, timeout)`; a failure quotes what arrived and
  names the full log file.

A test declares what it needs and is skipped, with the reason, on targets that lack it:

    @pytest.mark.needs("wifi", "i2c_sensor", heap=200_000)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_DEFAULT_TARGET = "virtual"  # CI has no board; `--target auto` looks for one
_DEFAULT_BOARD = "ESP32_GENERIC"
# mpremote reads some replies with blocking reads; a node that went silent (crashed, or a
# test that desynchronised the raw REPL) must fail that test, not hang the session.
_READ_TIMEOUT_S = 30.0


# --- what a target can do: feature -> (description, predicate(kind, board)) -----------------

def _has_i2c_sensor(kind: str, board) -> bool:
    return kind == "board" and any(s.bus == "i2c" for s in board.sensors)


FEATURES: dict[str, tuple[str, Callable]] = {
    "hardware": ("real silicon", lambda kind, board: kind == "board"),
    "wifi": ("WiFi", lambda kind, board: kind == "board"),
    "network": ("IP networking (a board's WiFi or the virtual board's host sockets)",
                lambda kind, board: kind in ("board", "virtual")),
    "i2c_sensor": ("a real I2C sensor in its board config",
                   _has_i2c_sensor),
    "psram": ("PSRAM", lambda kind, board: bool(board.psram)),
    "romfs": ("a ROMFS partition",
              lambda kind, board: kind in ("virtual", "qemu-rv32") or board.has_romfs),
    "emulated": ("emulation (QEMU or the virtual board)",
                 lambda kind, board: kind in ("qemu", "qemu-rv32", "virtual")),
}


def missing_needs(kind: str, board, features: tuple[str, ...] = (),
                  heap: int | None = None) -> str | None:
    """Why a target of `kind` running `board` cannot run a test with these needs, or None.

    Raises:
        ValueError: an unknown feature name (a typo must not silently skip a test).
    """
    lacking = []
    for name in features:
        if name not in FEATURES:
            raise ValueError(f"unknown need '{name}' (known: {', '.join(FEATURES)})")
        description, available = FEATURES[name]
        if not available(kind, board):
            lacking.append(f"{name} ({description})")
    if heap is not None and board.heap_budget < heap:
        lacking.append(f"heap >= {heap:,} B (board budget {board.heap_budget:,} B)")
    if not lacking:
        return None
    return f"needs {', '.join(lacking)}; target is {kind} {board.name}"


# --- options ------------------------------------------------------------------------------

# Our options' short names that another plugin already owns in this run (pytest-embedded's
# `--target` is the chip): we then register only the long `--tinysense-*` name, and say so.
_SHADOWED: list[str] = []


def _taken_options(parser: pytest.Parser) -> set[str]:
    """Option strings other plugins registered before us (we add ours last: trylast)."""
    names: set[str] = set()
    for group in [parser._anonymous, *parser._groups]:   # pytest keeps no public list
        for opt in group.options:
            names.update(opt.names())
    return names


@pytest.hookimpl(trylast=True)
def pytest_addoption(parser: pytest.Parser) -> None:
    taken = _taken_options(parser)
    _SHADOWED.clear()

    def names(short: str) -> list[str]:
        if short in taken:
            _SHADOWED.append(short)
            return [f"--tinysense-{short[2:]}"]
        return [f"--tinysense-{short[2:]}", short]

    group = parser.getgroup("tinysense", "tinysense node (hardware in the loop)")
    group.addoption(*names("--target"), default=None, dest="tinysense_target",
                    help="node to run on: auto | virtual | qemu | qemu-rv32 | a serial port or "
                         "pyserial URL (env TINYSENSE_TARGET; default: ini tinysense_target, "
                         "virtual)")
    group.addoption(*names("--board"), default=None, dest="tinysense_board",
                    help="board id from board_configs/ or a .toml path (env TINYSENSE_BOARD; "
                         f"default {_DEFAULT_BOARD})")
    group.addoption(*names("--firmware"), default=None, dest="tinysense_firmware",
                    help="MicroPython .bin that QEMU boots (env TINYSENSE_FIRMWARE)")
    group.addoption(*names("--no-deploy"), action="store_true", dest="tinysense_no_deploy",
                    help="use the firmware already on the node instead of deploying firmware/")
    parser.addini("tinysense_target", "default --target", default=_DEFAULT_TARGET)
    parser.addini("tinysense_board", "default --board", default=_DEFAULT_BOARD)


def _option(config: pytest.Config, name: str, env: str, ini: str | None = None) -> str | None:
    value = config.getoption(name) or os.environ.get(env)
    if not value and ini:
        value = config.getini(ini)
    return value or None


class TinysenseSession:
    """Per-session state: the options, the board and the resolved target."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.spec = _option(config, "tinysense_target", "TINYSENSE_TARGET", "tinysense_target")
        self.board_name = _option(config, "tinysense_board", "TINYSENSE_BOARD",
                                  "tinysense_board")
        self.firmware = _option(config, "tinysense_firmware", "TINYSENSE_FIRMWARE")
        self.board = None
        self.target = None
        self.node_info = ""  # what the node said it is, once the session opened it

    def resolve(self) -> None:
        """Load the board and resolve the target; a user error ends the session in one line."""
        from tinysense.boards import load_board
        from tinysense.errors import TinysenseError
        from tinysense.targets import node_board, resolve_target

        if self.firmware:
            # resolve_target and open_node read the QEMU firmware from the environment.
            os.environ["TINYSENSE_FIRMWARE"] = str(Path(self.firmware).resolve())
        try:
            self.board = load_board(self.board_name)
            self.target = resolve_target(self.spec, self.board)
            self.board = node_board(self.target.kind, self.board)  # RV32 QEMU: + its ROMFS
        except TinysenseError as exc:
            raise pytest.UsageError(f"tinysense: {exc}") from None

    def header(self) -> str:
        t = self.target
        where = f" {t.url}" if t.url else ""
        line = f"tinysense target: {t.kind}{where} ({t.reason}); board {self.board.name}"
        if t.kind == "virtual":
            from tinysense.errors import TinysenseError
            from tinysense.targets.virtual import unix_port, unix_port_arch

            try:
                port = unix_port(self.board)
                line += (f"\ntinysense virtual board runs {port.exe} (mpy arch "
                         f"{unix_port_arch(port.exe)}, {port.source})")
            except TinysenseError as exc:
                line += f"\ntinysense virtual board: {exc}"
            else:
                line += f"\n{port.note}" if port.note else ""
        return line


def _session(config: pytest.Config) -> TinysenseSession:
    return config.stash[_SESSION_KEY]


_SESSION_KEY = pytest.StashKey[TinysenseSession]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*features, heap=None): skip unless the target has these features "
        f"({', '.join(FEATURES)}) and the board at least `heap` bytes of GC heap budget")
    config.stash[_SESSION_KEY] = TinysenseSession(config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _session(session.config).resolve()  # before the header is printed, which shows it


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash.get(_SESSION_KEY, None)
    if state is not None and state.node_info:
        terminalreporter.write_line(f"tinysense node: {state.node_info}")


def pytest_report_header(config: pytest.Config) -> str | None:
    state = config.stash.get(_SESSION_KEY, None)
    if state is None or state.target is None:
        return None
    shadowed = "".join(f"\ntinysense: {o} belongs to another plugin here; use "
                       f"--tinysense-{o[2:]}" for o in _SHADOWED)
    return state.header() + shadowed


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Turn unmet `needs` into skip marks (reported at the test's own line), typos into errors."""
    state = _session(config)
    for item in items:
        marks = list(item.iter_markers("needs"))
        if not marks:
            continue
        features = tuple(f for mark in marks for f in mark.args)
        heaps = [mark.kwargs["heap"] for mark in marks if "heap" in mark.kwargs]
        try:
            why = missing_needs(state.target.kind, state.board, features,
                                max(heaps) if heaps else None)
        except ValueError as exc:
            item.stash[_BAD_NEEDS_KEY] = str(exc)
            continue
        if why:
            item.add_marker(pytest.mark.skip(reason=why))


_BAD_NEEDS_KEY = pytest.StashKey[str]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    bad = item.stash.get(_BAD_NEEDS_KEY, None)
    if bad:
        pytest.fail(f"@pytest.mark.needs: {bad}", pytrace=False)


def reconnect(node, timeout: float = 30.0) -> None:
    """Close the node's port and open it again until the node answers in its raw REPL.

    What a host does after a hard reset or a USB re-plug (a board's native USB port vanishes
    for a moment); the node is not reset by this, only interrupted (Ctrl-C) if it runs code.

    Raises:
        TinysenseError: no raw REPL on the port within `timeout` seconds.
    """
    import time

    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    from tinysense.errors import TinysenseError
    from tinysense.node import no_delay

    with contextlib.suppress(Exception):
        node.close()
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        transport = None
        try:
            transport = SerialTransport(node.target.url, baudrate=node.board.console_baud,
                                        timeout=_READ_TIMEOUT_S)
            no_delay(transport)
            transport.enter_raw_repl(soft_reset=False, timeout_overall=2)
            node.transport = transport
            return
        except (TransportError, OSError) as exc:  # serial.SerialException is an OSError
            last = str(exc)
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.close()
            time.sleep(0.5)
    raise TinysenseError(f"node on {node.target.url} did not answer within {timeout:g} s "
                         f"after reconnecting ({last})")


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def target_option(request: pytest.FixtureRequest) -> str:
    """The --target value as given (after env and ini defaults)."""
    return _session(request.config).spec


@pytest.fixture(scope="session")
def board_option(request: pytest.FixtureRequest) -> str:
    """The --board value as given (after env and ini defaults)."""
    return _session(request.config).board_name


@pytest.fixture(scope="session")
def firmware_option(request: pytest.FixtureRequest) -> str | None:
    return _session(request.config).firmware


@pytest.fixture(scope="session")
def board_config(request: pytest.FixtureRequest):
    """The BoardConfig of --board."""
    return _session(request.config).board


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest):
    """The resolved target (kind, url, reason); url is None for virtual/qemu until started."""
    return _session(request.config).target


def _start(state: TinysenseSession, workdir: Path, stack) -> str:
    """Start what the target needs (a private virtual board, QEMU) and return its URL."""
    t, board = state.target, state.board
    if t.url is not None:
        return t.url
    if t.kind == "virtual":
        from tinysense.targets.virtual import start_board, stop_board

        directory = workdir / "virtual-board"
        vb = start_board(str(board.path), directory=directory, parent_bound=True)
        stack.callback(stop_board, str(board.path), directory)
        return vb.url
    if t.kind == "qemu":
        from tinysense.targets.qemu.runner import QemuNode

        qemu = QemuNode(board, os.environ["TINYSENSE_FIRMWARE"], workdir=workdir / "qemu")
        stack.enter_context(qemu)
        return qemu.url
    if t.kind == "qemu-rv32":
        from tinysense.targets.qemu.rv32 import ensure_rv32, stop_rv32

        directory = workdir / "qemu-rv32"  # a fresh flash for the session
        rv32, _ = ensure_rv32(board, directory=directory, parent_bound=True)
        stack.callback(stop_rv32, board, directory)
        return rv32.url
    raise pytest.UsageError(f"tinysense: target {t.kind} has no URL")


@pytest.fixture(scope="session")
def session_node(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator:
    """The node for the whole session: started, connected, firmware/ deployed."""
    from tinysense.errors import TinysenseError
    from tinysense.node import open_node
    from tinysense.targets import Target

    state = _session(request.config)
    workdir = tmp_path_factory.mktemp("tinysense")
    with contextlib.ExitStack() as stack:
        try:
            url = _start(state, workdir, stack)
            node = stack.enter_context(open_node(
                Target(state.target.kind, url, state.target.reason), state.board))
            node.transport.serial.timeout = _READ_TIMEOUT_S
            deployed = not request.config.getoption("tinysense_no_deploy")
            if deployed:
                node.deploy()
            ident = node.exec(
                "import sys\nprint(getattr(sys.implementation, '_machine', sys.platform), '|',"
                " '.'.join(str(v) for v in sys.implementation.version[:3]))").strip()
            machine, _, version = ident.rpartition(" | ")
            state.node_info = (f"MicroPython {version} ({machine}) on {url}"
                               f"{', firmware/ deployed' if deployed else ''}")
        except TinysenseError as exc:
            pytest.exit(f"tinysense: cannot use the {state.target.kind} target: {exc}",
                        returncode=3)
        yield node


@pytest.fixture
def node(session_node):
    """The session's node after a fresh soft reset (boot.py ran; main.py did not).

    If the node does not answer (a test closed the port, the USB device went away, the REPL
    is out of step), the port is reopened first, so one bad test does not fail the rest.
    """
    from tinysense.errors import TinysenseError

    try:
        session_node.soft_reset()
    except (TinysenseError, OSError):
        reconnect(session_node)
        session_node.soft_reset()
    return session_node


@pytest.fixture
def dut(node, tmp_path):
    """The node's console, with expect(regex, timeout). Its full log is tmp_path/console.log."""
    from tinysense.node.dut import Dut

    console = Dut(node, tmp_path / "console.log")
    yield console
    console.close()

