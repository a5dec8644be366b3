"""Where tinysense's parts live: the one resolver, for a checkout and for an installed wheel.

Every other module takes its paths from here. Two layouts:

- a checkout (the editable install of `make setup`, or $TINYSENSE_ROOT naming one): the run-time
  data is read from the tree (firmware/, board_configs/, models/, ...), build outputs go to
  build/ (`make nodes`, `make natmods`, compiled .mpy) and state to .tinysense/;
- an installed wheel: the same data, copied into the package as tinysense/_data/ by the build
  (setup.py, from PACKAGE_DATA below), is read there; build outputs and state never go into
  site-packages but into the state directory.

State (virtual boards, QEMU images, firmware cache, gateway database, demo) goes to
$TINYSENSE_HOME, else .tinysense/ in a checkout, else $XDG_STATE_HOME/tinysense (default
~/.local/state/tinysense).
"""

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# The directory holding the tinysense package (host/ in a checkout, site-packages installed):
# a `python -m tinysense...` child process imports from here.
IMPORT_ROOT = _PACKAGE.parent
DATA_DIRNAME = "_data"

# What the tools read at run time, as (directory relative to the checkout, globs of the files
# in it). The wheel build (setup.py) copies exactly these into tinysense/_data/<directory>/.
# Training scripts and caches of models/ stay out; so do __pycache__ and dot files anywhere.
PACKAGE_DATA = (
    ("firmware", ("**/*.py",)),                       # node source, deployed by the host
    ("board_configs", ("*.toml",)),
    ("models", ("README.md", "*/model.tflite", "*/meta.json", "*/*.npz", "*/*.tsrc")),
    ("ports/unix-vboard", ("*.py",)),                 # the virtual board's shims and _vboot.py
    ("tests/conformance", ("*.tflite", "SOURCES.md")),  # validate/bench --all
)


def _checkout() -> Path | None:
    """The repository checkout this package runs from ($TINYSENSE_ROOT, else the tree around
    host/tinysense/), or None when it runs from an installed wheel."""
    env = os.environ.get("TINYSENSE_ROOT")
    if env:
        return Path(env).resolve()
    root = _PACKAGE.parents[1]
    if (root / "pyproject.toml").is_file() and (root / "firmware" / "tsnode").is_dir():
        return root
    return None


# The checkout's root, or None when installed.
REPO_ROOT = _checkout()
CHECKOUT = REPO_ROOT is not None
# Where the run-time data is: the checkout itself, or the wheel's copy of it.
DATA_ROOT = REPO_ROOT if CHECKOUT else _PACKAGE / DATA_DIRNAME


def installed_data_missing() -> str | None:
    """When installed without its data (a wheel built without setup.py's step), one line
    saying so; else None."""
    if CHECKOUT or DATA_ROOT.is_dir():
        return None
    return (f"tinysense is installed without its data ({DATA_ROOT} is missing): reinstall it "
            "from a wheel built by its setup.py, or set TINYSENSE_ROOT to a checkout")


def state_dir() -> Path:
    """The per-user state directory as the environment says now (tests point $TINYSENSE_HOME
    at a temporary directory): $TINYSENSE_HOME, else .tinysense/ in a checkout, else
    $XDG_STATE_HOME/tinysense, else ~/.local/state/tinysense."""
    home = os.environ.get("TINYSENSE_HOME")
    if home:
        return Path(home)
    if CHECKOUT:
        return REPO_ROOT / ".tinysense"
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "tinysense"


FIRMWARE_DIR = DATA_ROOT / "firmware"
# The MicroPython side of our nodes: the virtual board's shims, the RV32 QEMU board.
PORTS_DIR = DATA_ROOT / "ports"
BOARD_CONFIG_DIR = Path(os.environ.get("TINYSENSE_BOARD_CONFIGS", DATA_ROOT / "board_configs"))
MODELS_DIR = DATA_ROOT / "models"
CONFORMANCE_DIR = DATA_ROOT / "tests" / "conformance"
# Per-user state: virtual board flash directories, firmware cache, gateway registry.
STATE_DIR = state_dir()
# Build outputs: `make nodes` (micropython/: the 32-bit unix port, the RV32 QEMU firmware),
# `make natmods` (natmod/<arch>/tsnn.mpy), deploy's compiled .mpy (<arch>/). In a checkout
# build/; installed, under the state directory (nothing builds the first two there: a wheel's
# virtual board runs the 64-bit PyPI unix port and the viper kernels).
BUILD_DIR = REPO_ROOT / "build" if CHECKOUT else STATE_DIR / "build"
NODE_BUILD_DIR = BUILD_DIR / "micropython"
NATMOD_DIR = BUILD_DIR / "natmod"
