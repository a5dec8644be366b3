"""Where the repository's parts live, found from this package's location or the environment."""

import os
from pathlib import Path

REPO_ROOT = Path(os.environ.get("TINYSENSE_ROOT", Path(__file__).resolve().parents[2]))
FIRMWARE_DIR = REPO_ROOT / "firmware"
# The MicroPython side of our nodes: the virtual board's shims, the RV32 QEMU board.
PORTS_DIR = REPO_ROOT / "ports"
BOARD_CONFIG_DIR = Path(os.environ.get("TINYSENSE_BOARD_CONFIGS", REPO_ROOT / "board_configs"))
MODELS_DIR = REPO_ROOT / "models"
CONFORMANCE_DIR = REPO_ROOT / "tests" / "conformance"
# Per-user state: virtual board flash directories, firmware cache, gateway registry.
STATE_DIR = Path(os.environ.get("TINYSENSE_HOME", REPO_ROOT / ".tinysense"))
