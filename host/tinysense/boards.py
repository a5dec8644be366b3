"""Board configs: one TOML per board in board_configs/, loaded and validated once."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

from tinysense.errors import TinysenseError
from tinysense.paths import BOARD_CONFIG_DIR, installed_data_missing

# esptool chip name -> the mpy architectures its cores can run. One table, no scattered ifs.
CHIP_ARCHS = {
    "esp32": ("xtensawin",),
    "esp32s2": ("xtensawin",),
    "esp32s3": ("xtensawin",),
    "esp32c3": ("rv32imc",),
    "esp32c6": ("rv32imc",),
    "virtual": ("x64", "x86", "armv7m", "armv6m", "arm64"),
}
FLASH_SIZES = {"1MB": 1 << 20, "2MB": 2 << 20, "4MB": 4 << 20, "8MB": 8 << 20, "16MB": 16 << 20}


@dataclasses.dataclass(frozen=True)
class Sensor:
    kind: str
    bus: str
    address: int | None = None


@dataclasses.dataclass(frozen=True)
class BoardConfig:
    """One board, as its TOML file describes it (see board_configs/ESP32_GENERIC.toml)."""

    name: str
    description: str
    chip: str
    flash_size: str
    firmware_offset: int
    baud: int
    console_baud: int
    heap_budget: int
    psram: bool
    psram_bytes: int
    mpy_arch: str
    romfs_offset: int
    romfs_size: int
    usb: tuple[tuple[int, int], ...]
    pins: dict[str, int]
    sensors: tuple[Sensor, ...]
    micropython: str | None
    path: Path

    @property
    def flash_bytes(self) -> int:
        return FLASH_SIZES[self.flash_size]

    @property
    def is_virtual(self) -> bool:
        return self.chip == "virtual"

    @property
    def has_romfs(self) -> bool:
        return self.romfs_size > 0


_FIELDS = {
    # name: (type, required)
    "name": (str, True),
    "description": (str, False),
    "chip": (str, True),
    "flash_size": (str, True),
    "firmware_offset": (int, True),
    "baud": (int, True),
    "console_baud": (int, False),
    "heap_budget": (int, True),
    "psram": (bool, True),
    "psram_bytes": (int, False),
    "mpy_arch": (str, True),
    "romfs_offset": (int, False),
    "romfs_size": (int, False),
    "usb": (list, False),
    "micropython": (str, False),
    "pins": (dict, False),
    "sensors": (list, False),
}


def available_boards() -> list[str]:
    """Names of the boards with a config in board_configs/ (paths.BOARD_CONFIG_DIR).

    Raises:
        TinysenseError: tinysense is installed without its data, or the directory has none.
    """
    missing = installed_data_missing()
    if missing:
        raise TinysenseError(missing)
    names = sorted(p.stem for p in BOARD_CONFIG_DIR.glob("*.toml"))
    if not names:
        raise TinysenseError(f"no board configs (*.toml) in {BOARD_CONFIG_DIR}")
    return names


def _bad(path: Path, field: str, why: str) -> TinysenseError:
    return TinysenseError(f"board config {path}: field '{field}': {why}")


def load_board(name_or_path: str | os.PathLike | None = None) -> BoardConfig:
    """Load and validate a board config by board id (`ESP32_GENERIC`) or TOML path.

    Args:
        name_or_path: a board id from board_configs/, a path to a .toml file, or None for
            `$TINYSENSE_BOARD` (default ESP32_GENERIC).

    Raises:
        TinysenseError: unknown board, unreadable or malformed file, or a bad field; the
            message names the file and the field.
    """
    if name_or_path is None:
        name_or_path = os.environ.get("TINYSENSE_BOARD", "ESP32_GENERIC")
    text = str(name_or_path)
    if text.endswith(".toml") or os.sep in text:
        path = Path(text)
    else:
        path = BOARD_CONFIG_DIR / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(available_boards())
        raise TinysenseError(f"unknown board '{text}' (no {path}); known boards: {known}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TinysenseError(f"board config {path}: not valid TOML: {exc}") from None
    for key in raw:
        if key not in _FIELDS:
            raise _bad(path, key, f"unknown field (known: {', '.join(_FIELDS)})")
    for key, (typ, required) in _FIELDS.items():
        if key not in raw:
            if required:
                raise _bad(path, key, "missing")
            continue
        value = raw[key]
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if not ok:
            raise _bad(path, key, f"expected {typ.__name__}, got {type(value).__name__}")
    chip = raw["chip"]
    if chip not in CHIP_ARCHS:
        raise _bad(path, "chip", f"unknown chip '{chip}' (known: {', '.join(CHIP_ARCHS)})")
    if raw["mpy_arch"] not in CHIP_ARCHS[chip]:
        raise _bad(path, "mpy_arch", f"'{raw['mpy_arch']}' cannot run on {chip} "
                   f"(use {' or '.join(CHIP_ARCHS[chip])})")
    if raw["flash_size"] not in FLASH_SIZES:
        raise _bad(path, "flash_size", f"'{raw['flash_size']}' (known: {', '.join(FLASH_SIZES)})")
    for key in ("firmware_offset", "heap_budget", "baud"):
        if raw[key] < 0 or (key != "firmware_offset" and raw[key] == 0):
            raise _bad(path, key, f"must be positive, got {raw[key]}")
    if raw["heap_budget"] < 16 * 1024:
        raise _bad(path, "heap_budget", f"{raw['heap_budget']} bytes is too small for "
                   "MicroPython (at least 16384)")
    usb = []
    for item in raw.get("usb", []):
        try:
            vid, pid = (int(x, 16) for x in str(item).split(":"))
        except ValueError:
            raise _bad(path, "usb", f"'{item}' is not VID:PID in hex") from None
        usb.append((vid, pid))
    pins = raw.get("pins", {})
    for pin, value in pins.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _bad(path, f"pins.{pin}", f"expected a GPIO number, got {value!r}")
    sensors = []
    for i, sensor in enumerate(raw.get("sensors", [])):
        if not isinstance(sensor, dict) or "kind" not in sensor or "bus" not in sensor:
            raise _bad(path, f"sensors[{i}]", "needs 'kind' and 'bus'")
        sensors.append(Sensor(sensor["kind"], sensor["bus"], sensor.get("address")))
    return BoardConfig(
        name=raw["name"],
        description=raw.get("description", ""),
        chip=chip,
        flash_size=raw["flash_size"],
        firmware_offset=raw["firmware_offset"],
        baud=raw["baud"],
        console_baud=raw.get("console_baud", 115200),
        heap_budget=raw["heap_budget"],
        psram=raw["psram"],
        psram_bytes=raw.get("psram_bytes", 0),
        mpy_arch=raw["mpy_arch"],
        romfs_offset=raw.get("romfs_offset", 0),
        romfs_size=raw.get("romfs_size", 0),
        usb=tuple(usb),
        pins=dict(pins),
        sensors=tuple(sensors),
        micropython=raw.get("micropython"),
        path=path,
    )
