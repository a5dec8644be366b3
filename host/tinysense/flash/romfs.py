"""Deploy to ROMFS: compiled firmware and model packages in one read-only image at /rom.

On a board whose MicroPython has a ROMFS partition (board config romfs_size > 0), the
image goes there with mpremote's romfs deploy, and the engine can read a model's constants
in place (`memoryview(open('/rom/models/x.tsm', 'rb'))` is flash-mapped, zero-copy). On the
virtual board the image becomes the board directory's `romfs.img`, which its start-up mounts
at /rom (after a reset). A board without a ROMFS partition gets a normal filesystem deploy
plus the models in /models/, and we say so.

Image layout (also what /rom looks like on the node):
    /rom/tsnode/...        the node package, .mpy compiled for the node's arch
    /rom/models/<name>     the model packages (.tsm)
boot.py, main.py and /tsnode_board.json stay on the filesystem (MicroPython runs boot.py and
main.py by name from "/"). A /tsnode directory left on the filesystem by an earlier deploy
would shadow /rom/tsnode ("" comes before /rom in sys.path), so it is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
import types
from collections.abc import Callable, Sequence
from pathlib import Path

from tinysense.errors import TinysenseError
from tinysense.paths import FIRMWARE_DIR

ROMFS_HEADER = b"\xd2\xcd\x31"
MODELS_DIR = "models"
_FS_ONLY = ("/boot.py", "/main.py")


@dataclasses.dataclass(frozen=True)
class RomfsResult:
    where: str                 # "romfs-partition", "virtual-romfs" or "filesystem"
    size: int                  # image bytes (0 for the filesystem fallback)
    files: tuple[str, ...]     # node paths now holding the package and models
    message: str
    image_path: Path | None = None   # the virtual board's romfs.img, when that is where


def build_romfs(arch: str | None, models: Sequence[str | os.PathLike] = (), *,
                src: str | os.PathLike = FIRMWARE_DIR,
                build_dir: str | os.PathLike | None = None) -> tuple[bytes, list[str]]:
    """A ROMFS image of firmware/ compiled for `arch` plus `models`; returns (image, paths).

    Uses tinysense.deploy.compile_firmware (mpy-cross -march=arch) and
    mpremote.romfs.make_romfs (the same builder as `mpremote romfs build`).
    """
    from mpremote.romfs import make_romfs

    from tinysense.deploy import compile_firmware

    files = [f for f in compile_firmware(arch, src, build_dir) if f.remote not in _FS_ONLY]
    with tempfile.TemporaryDirectory(prefix="tinysense-romfs-") as stage:
        root = Path(stage)
        for f in files:
            dest = root / f.remote.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.content())
        for model in models:
            model = Path(model)
            if not model.is_file():
                raise TinysenseError(f"model package {model} does not exist; make one with "
                                     "`tinysense convert`")
            dest = root / MODELS_DIR / model.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(model.read_bytes())
        with contextlib.redirect_stdout(io.StringIO()):   # make_romfs prints a tree
            image = make_romfs(str(root), mpy_cross=False)
        paths = sorted("/rom/" + p.relative_to(root).as_posix()
                       for p in root.rglob("*") if p.is_file())
    return image, paths


def _remove_fs_package(node, say: Callable[[str], None]) -> None:
    """Remove /tsnode from the node's filesystem so it cannot shadow /rom/tsnode."""
    from tinysense.deploy import parse_scan
    from tinysense.nodecode import script

    _, files, dirs = parse_scan(node.exec(script("scan", dirs=["/tsnode"], files=[]),
                                          timeout=60))
    if not files and not dirs and not node.exists("/tsnode"):
        return
    for path in sorted(files):
        node.remove(path)
    for path in sorted(dirs | {"/tsnode"}, key=len, reverse=True):
        node.exec(f"import os\ntry:\n os.rmdir({path!r})\nexcept OSError:\n pass")
    say(f"romfs: removed /tsnode from the filesystem ({len(files)} files) so /rom/tsnode is used")


def _fs_only_deploy(node, src: Path, say: Callable[[str], None]) -> None:
    """boot.py, main.py and the board json on the filesystem (deploy() of just those)."""
    from tinysense.deploy import deploy

    with tempfile.TemporaryDirectory(prefix="tinysense-fs-") as stage, \
            tempfile.TemporaryDirectory(prefix="tinysense-fs-build-") as build:
        for name in _FS_ONLY:
            source = src / name.lstrip("/")
            if source.is_file():
                (Path(stage) / source.name).write_bytes(source.read_bytes())
        deploy(node, src=stage, build_dir=build, progress=say)


def _virtual_romfs_path(node) -> Path:
    """Where the virtual board behind `node` looks for romfs.img (its board directory).

    A board started by `tinysense board start` is found among the running boards by URL;
    one started elsewhere (a test session's private board) is asked for its flash directory,
    which the supervisor passes to the VM as TSVB_FLASH (tinysense/targets/vboard/_vboot.py).
    """
    from tinysense.targets.virtual import running_boards

    for vb in running_boards():
        if node.target.url in (vb.pty, str(vb.tty), vb.tcp_url):
            return vb.romfs_image
    flash = node.exec("import os\nprint(os.getenv('TSVB_FLASH') or '')", timeout=10).strip()
    if not flash:
        raise TinysenseError(f"cannot find the virtual board directory behind "
                             f"{node.target.url}; start it with `tinysense board start`")
    return Path(flash).parent / "romfs.img"


def _mpremote_romfs_deploy(node, image: bytes) -> None:
    """Write `image` to ROMFS partition 0 with mpremote's own romfs deploy."""
    from mpremote.commands import CommandError, _do_romfs_deploy

    state = types.SimpleNamespace(transport=node.transport, ensure_raw_repl=lambda: None,
                                  did_action=lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tinysense.romfs"
        path.write_bytes(image)
        args = types.SimpleNamespace(path=str(path), partition=0, mpy=False)
        try:
            _do_romfs_deploy(state, args)
        except (CommandError, SystemExit) as exc:
            raise TinysenseError(f"mpremote romfs deploy failed on {node.target.url}: {exc}; "
                                 "is this MicroPython built with ROMFS?") from None


def deploy_romfs(node, models: Sequence[str | os.PathLike] = (), *,
                 src: str | os.PathLike = FIRMWARE_DIR, build_dir: str | os.PathLike | None = None,
                 virtual_board=None, say: Callable[[str], None] = print) -> RomfsResult:
    """Deploy firmware/ and `models` to the node's ROMFS (see the module docstring).

    Args:
        node: a connected tinysense.node.Node.
        models: .tsm model packages to include (at /rom/models/<name>).
        src: the firmware directory (default firmware/).
        build_dir: where .mpy files go (default build/<arch>/).
        virtual_board: for a virtual target, its VirtualBoard (default: found by URL).
        say: where progress lines go.

    Returns:
        Where the files went; `message` says it in one line (also passed to `say`).
    """
    cfg = node.board
    rv32 = node.target.kind == "qemu-rv32"  # ROMFS from a file QEMU loads at start
    if node.target.kind != "virtual" and not cfg.has_romfs and not rv32:
        from tinysense.deploy import deploy

        deploy(node, src=src, build_dir=build_dir, progress=say)
        placed = []
        for model in models:
            model = Path(model)
            node.mkdir("/" + MODELS_DIR)
            node.put(model.read_bytes(), f"/{MODELS_DIR}/{model.name}")
            placed.append(f"/{MODELS_DIR}/{model.name}")
        message = (f"board {cfg.name} has no ROMFS partition (romfs_size = 0): deployed to the "
                   "filesystem instead; models are in /models/ and load into RAM")
        say(message)
        return RomfsResult("filesystem", 0, tuple(placed), message)

    from tinysense.deploy import node_arch

    arch = node_arch(node)
    image, paths = build_romfs(arch, models, src=src, build_dir=build_dir)
    say(f"romfs: {len(image)} bytes, {len(paths)} files for {arch or 'bytecode'}")
    if rv32:
        from tinysense.qemu.rv32 import ROMFS_MAX

        if len(image) > ROMFS_MAX:
            raise TinysenseError(f"the ROMFS image is {len(image)} bytes; the RV32 QEMU board's "
                                 f"partition holds {ROMFS_MAX}: deploy fewer models")
    elif node.target.kind != "virtual" and len(image) > cfg.romfs_size:
        raise TinysenseError(f"the ROMFS image is {len(image)} bytes; {cfg.name}'s partition "
                             f"holds {cfg.romfs_size}: deploy fewer models (nothing changed)")
    _fs_only_deploy(node, Path(src), say)
    _remove_fs_package(node, say)
    image_path = None
    if node.target.kind == "virtual":
        target = virtual_board.romfs_image if virtual_board else _virtual_romfs_path(node)
        tmp = target.with_suffix(".part")
        tmp.write_bytes(image)
        os.replace(tmp, target)
        image_path = target
        node.soft_reset()  # the virtual board mounts romfs.img at /rom when its VM starts
        where = "virtual-romfs"
        note = "" if cfg.has_romfs else (f" (the real {cfg.name} has no ROMFS partition: "
                                         "there this deploy goes to the filesystem)")
        message = f"deployed {len(image)} bytes to ROMFS at /rom ({target}){note}"
    elif rv32:
        from tinysense.qemu.rv32 import board_for_url, hard_reset

        rb = board_for_url(node.target.url)
        if rb is None:
            raise TinysenseError(f"cannot find the RV32 QEMU board behind {node.target.url}; "
                                 "start it with `tinysense qemu start --kind rv32`")
        tmp = rb.romfs_image.with_suffix(".part")
        tmp.write_bytes(image)
        os.replace(tmp, rb.romfs_image)
        image_path = rb.romfs_image
        hard_reset(node)  # QEMU loads romfs.img into the ROMFS partition when it starts
        node.soft_reset()
        where = "virtual-romfs"
        message = (f"deployed {len(image)} bytes to the RV32 QEMU board's ROMFS at /rom "
                   f"({rb.romfs_image}; the real {cfg.name} has no ROMFS partition)")
    else:
        _mpremote_romfs_deploy(node, image)
        node.soft_reset()
        where = "romfs-partition"
        message = f"deployed {len(image)} bytes to the ROMFS partition of {cfg.name} (/rom)"
    listed = node.exec("import os\nprint(' '.join(os.listdir('/rom')))", timeout=10).split()
    if "tsnode" not in listed:
        raise TinysenseError(f"after deploying, /rom on the node holds {listed}, not tsnode/: "
                             "the ROMFS image was not mounted")
    say(message)
    return RomfsResult(where, len(image), tuple(paths), message, image_path)
