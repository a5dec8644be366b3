"""How to reach a node: a real board on a serial port, Espressif's QEMU, the RV32 QEMU board,
or the virtual board.

`resolve_target(spec, board)` turns `--target auto|virtual|qemu|qemu-rv32|<port or pyserial
URL>` into a Target (kind, url, reason). It only looks; starting QEMU or a virtual board is
the caller's job (`tinysense.node.open_node` does it for the virtual and RV32 QEMU boards).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess

from tinysense.boards import BoardConfig, load_board
from tinysense.errors import TinysenseError
from tinysense.targets.qemu.machines import QEMU_MACHINES, find_qemu

# USB bridges found on ESP32 boards: (VID, PID or None for any). A board config's `usb` list
# adds its own pairs.
USB_IDS: tuple[tuple[int, int | None], ...] = (
    (0x303A, None),  # Espressif native USB (S2/S3/C3/C6 USB-Serial-JTAG and CDC)
    (0x10C4, 0xEA60),  # Silicon Labs CP210x
    (0x1A86, 0x7523),  # WCH CH340
    (0x1A86, 0x55D4),  # WCH CH9102
    (0x0403, None),  # FTDI
)

KINDS = ("board", "qemu", "qemu-rv32", "virtual")

# An emulated node runs its code many times slower than a board, and on a busy host QEMU can be
# starved of the CPU for seconds: the host waits this many times longer for it to answer (its
# silence limits, not its speed). $TINYSENSE_TIMEOUT_SCALE sets the factor for every kind.
TIMEOUT_SCALE = {"qemu": 6.0, "qemu-rv32": 6.0}
TIMEOUT_SCALE_ENV = "TINYSENSE_TIMEOUT_SCALE"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a node is. kind: 'board' (a serial port or URL), 'qemu' (Espressif's), 'qemu-rv32'
    (MicroPython's ports/qemu, ESP32-C3-class: tinysense.targets.qemu.rv32) or 'virtual'.

    url is a pyserial URL for 'board' targets; None for the others until started.
    reason says how it was chosen ("no board on USB; qemu-system-xtensa not found; ...").
    """

    kind: str
    url: str | None
    reason: str

    @property
    def timeout_scale(self) -> float:
        """How many times a board's silence limits the host allows this node (TIMEOUT_SCALE)."""
        return timeout_scale(self.kind)


def timeout_scale(kind: str) -> float:
    """$TINYSENSE_TIMEOUT_SCALE if set (a number >= 1), else TIMEOUT_SCALE's factor for `kind`."""
    text = os.environ.get(TIMEOUT_SCALE_ENV, "").strip()
    if not text:
        return TIMEOUT_SCALE.get(kind, 1.0)
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 1000:
        raise TinysenseError(f"{TIMEOUT_SCALE_ENV}={text!r}: give a number from 1 to 1000 (how "
                             "many times longer than usual to wait for a node)")
    return value


@dataclasses.dataclass(frozen=True)
class UsbPort:
    device: str
    vid: int
    pid: int
    description: str


def find_usb_boards(cfg: BoardConfig | None = None) -> list[UsbPort]:
    """Serial ports whose USB VID:PID is an ESP32 bridge (USB_IDS plus the config's `usb`)."""
    from serial.tools import list_ports

    ids = list(USB_IDS) + [(vid, pid) for vid, pid in (cfg.usb if cfg else ())]
    found = []
    for port in list_ports.comports():
        if port.vid is None:
            continue
        if any(port.vid == vid and (pid is None or port.pid == pid) for vid, pid in ids):
            found.append(UsbPort(port.device, port.vid, port.pid, port.description or ""))
    return sorted(found, key=lambda p: p.device)


@dataclasses.dataclass(frozen=True)
class QemuInfo:
    executable: str | None  # None: not usable; `reason` says why
    machine: str | None
    firmware: str | None  # the flash image / firmware from $TINYSENSE_FIRMWARE
    reason: str

    @property
    def usable(self) -> bool:
        return bool(self.executable and self.firmware)


def _qemu_has_machine(exe: str, machine: str) -> bool:
    try:
        out = subprocess.run([exe, "-machine", "help"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split()[:1] == [machine] for line in out.splitlines())


def detect_qemu(cfg: BoardConfig) -> QemuInfo:
    """Whether Espressif's QEMU can run this board: the executable (tinysense.targets.qemu.find_qemu:
    $TINYSENSE_QEMU_DIR, PATH, ~/.espressif) with the board's machine, and a firmware image
    configured in $TINYSENSE_FIRMWARE."""
    spec = QEMU_MACHINES.get(cfg.chip)
    if spec is None:
        return QemuInfo(None, None, None, f"QEMU has no machine for chip '{cfg.chip}'")
    name, machine = spec.binary, spec.machine
    found = find_qemu(cfg.chip)
    if found is None:
        return QemuInfo(None, machine, None, f"{name} not found")
    exe = str(found)
    if not _qemu_has_machine(exe, machine):
        return QemuInfo(None, machine, None, f"{exe} has no '-machine {machine}' (needs "
                        "Espressif's QEMU: idf_tools.py install qemu-xtensa qemu-riscv32)")
    firmware = os.environ.get("TINYSENSE_FIRMWARE")
    if not firmware:
        return QemuInfo(exe, machine, None, f"{name} found but TINYSENSE_FIRMWARE is not set")
    if not os.path.isfile(firmware):
        return QemuInfo(exe, machine, None, f"TINYSENSE_FIRMWARE={firmware} does not exist")
    return QemuInfo(exe, machine, firmware, f"{name} -machine {machine} with {firmware}")


def node_board(kind: str, cfg: BoardConfig) -> BoardConfig:
    """The board config as a target of `kind` presents it: the RV32 QEMU board is `cfg` plus
    its ROMFS partition (tinysense.targets.qemu.rv32.board_config); every other target is `cfg`."""
    if kind == "qemu-rv32":
        from tinysense.targets.qemu.rv32 import board_config

        return board_config(cfg)
    return cfg


def _rv32_unusable(cfg: BoardConfig) -> str | None:
    """Why the RV32 QEMU board cannot stand in for `cfg` here (None: it can)."""
    from tinysense.targets.qemu.rv32 import MPY_ARCH, detect_rv32

    if cfg.mpy_arch != MPY_ARCH:
        return f"it is C3-class ({MPY_ARCH}), {cfg.name} runs {cfg.mpy_arch}"
    info = detect_rv32()
    return None if info.usable else info.reason


def _port_target(spec: str) -> Target:
    if _URL.match(spec):
        return Target("board", spec, f"pyserial URL {spec} given")
    path = spec
    if os.name != "nt" and os.sep not in spec:
        path = os.path.join("/dev", spec)  # `--target ttyUSB0`
    if os.name == "nt" or os.path.exists(path):
        return Target("board", path, f"serial port {path} given")
    ports = ", ".join(p.device for p in find_usb_boards()) or "none found"
    raise TinysenseError(f"serial port {spec} does not exist (ESP32 ports on USB: {ports}); "
                         "plug the board in, or use --target auto|virtual|qemu|qemu-rv32")


def resolve_target(spec: str | None = None, board: str | BoardConfig | None = None) -> Target:
    """Resolve `--target` to a Target.

    Args:
        spec: 'auto', 'virtual', 'qemu' (Espressif's if installed, else the RV32 board),
            'qemu-rv32', a serial port (/dev/ttyUSB0, ttyACM0, COM3) or a
            pyserial URL (socket://127.0.0.1:5555, rfc2217://...). None: $TINYSENSE_TARGET,
            else 'auto'. 'auto' takes $TINYSENSE_PORT first if set.
        board: board id, TOML path or loaded config (for its USB ids and QEMU machine).

    Raises:
        TinysenseError: a port that does not exist, or 'qemu' when QEMU cannot run the board.
    """
    spec = (spec or os.environ.get("TINYSENSE_TARGET") or "auto").strip()
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    if spec == "virtual":
        return Target("virtual", None, "virtual board requested")
    if spec == "qemu":
        qemu = detect_qemu(cfg)
        if qemu.usable:
            return Target("qemu", None, f"QEMU requested: {qemu.reason}")
        why = _rv32_unusable(cfg)
        if why is None:
            return Target("qemu-rv32", None, f"QEMU requested; Espressif's: {qemu.reason}; "
                          "using the RV32 QEMU board")
        raise TinysenseError(f"--target qemu: {qemu.reason}; install Espressif's QEMU and "
                             f"set TINYSENSE_FIRMWARE, or use --target virtual (RV32 QEMU: "
                             f"{why})")
    if spec == "qemu-rv32":
        why = _rv32_unusable(cfg)
        if why is not None:
            hint = "" if cfg.mpy_arch == "rv32imc" else "; use --board ESP32_GENERIC_C3"
            raise TinysenseError(f"--target qemu-rv32: {why}{hint}")
        return Target("qemu-rv32", None, "RV32 QEMU board requested")
    if spec != "auto":
        return _port_target(spec)
    env_port = os.environ.get("TINYSENSE_PORT")
    if env_port:
        target = _port_target(env_port)
        return Target(target.kind, target.url, f"TINYSENSE_PORT={env_port}")
    checked = []
    if cfg.is_virtual:
        checked.append(f"board {cfg.name} is virtual")
    else:
        ports = find_usb_boards(cfg)
        if ports:
            port = ports[0]
            others = f" (also: {', '.join(p.device for p in ports[1:])})" if ports[1:] else ""
            return Target("board", port.device, f"found {port.description or 'board'} "
                          f"0x{port.vid:04x}:0x{port.pid:04x} on {port.device}{others}")
        checked.append("no board on USB")
        qemu = detect_qemu(cfg)
        if qemu.usable:
            return Target("qemu", None, f"no board on USB; using QEMU: {qemu.reason}")
        checked.append(qemu.reason)
        why = _rv32_unusable(cfg)
        if why is None:
            return Target("qemu-rv32", None, "; ".join(checked + ["using the RV32 QEMU board"]))
        checked.append(f"RV32 QEMU: {why}")
    return Target("virtual", None, "; ".join(checked + ["using virtual"]))
