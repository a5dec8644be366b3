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
# Model data starts on this boundary in the image (the partition is page aligned), so the
# engine reads the constants in place with 32-bit loads and needs no aligned staging copy
# (docs/engine.md "Where the constants live"; convert/report.py fit() counts on it).
MODEL_ALIGN = 4
_PADDING = 1   # ROMFS record kind: skipped by the reader (extmod/vfs_rom.c)
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

    Uses tinysense.node.deploy.compile_firmware (mpy-cross -march=arch) and
    mpremote.romfs.make_romfs (the same builder as `mpremote romfs build`).
    """
    from mpremote.romfs import make_romfs

    from tinysense.node.deploy import compile_firmware

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
        if models:
            image = _aligned_image(root, image, [root / MODELS_DIR / Path(m).name
                                                 for m in models])
        paths = sorted("/rom/" + p.relative_to(root).as_posix()
                       for p in root.rglob("*") if p.is_file())
    return image, paths


def _aligned_image(root: Path, image: bytes, models: list[Path]) -> bytes:
    """The image of `root` with each model's data on a MODEL_ALIGN boundary: mpremote's
    builder packs records back to back, so a padding record goes before each model's file
    record (shifting it changes the varint lengths of the records around it: repeat until
    every model is aligned; `image` is make_romfs's output, the same tree unpadded)."""
    from mpremote.romfs import VfsRomWriter

    datas = {m: m.read_bytes() for m in models}
    pads: dict[Path, int] = {}

    def build() -> bytes:
        vfs = VfsRomWriter()

        def walk(d: Path) -> None:
            for p in sorted(d.iterdir(), key=lambda q: q.name):   # make_romfs's order
                if p.is_dir():
                    vfs.opendir(p.name)
                    walk(p)
                    vfs.closedir()
                    continue
                if pads.get(p):   # a padding record is 2 + n bytes: n = pad - 2 (mod 4)
                    n = (pads[p] - 2) % MODEL_ALIGN
                    vfs._dir_stack[-1][1].extend(vfs._pack(_PADDING, bytes(n)))
                vfs.mkfile(p.name, datas[p] if p in datas else p.read_bytes())
        walk(root)
        # finalise() puts one byte before everything when the image length would be odd:
        # a padding record at the end keeps it even, so the models stay where we put them
        top = vfs._dir_stack[0][1]
        for n in (0, 1):
            tail = vfs._pack(_PADDING, bytes(n))
            size = len(top) + len(tail)
            if (len(ROMFS_HEADER) + len(vfs._encode_uint(size)) + size) % 2 == 0:
                top.extend(tail)
                break
        return vfs.finalise()

    for _ in range(8):
        at = _data_offsets(image)
        off = {m: at[m.relative_to(root).as_posix()] for m in models}
        bad = {m: o for m, o in off.items() if o % MODEL_ALIGN}
        if not bad:
            return image
        for m, o in bad.items():
            pads[m] = (pads.get(m, 0) + MODEL_ALIGN - o % MODEL_ALIGN) % MODEL_ALIGN
        image = build()
    raise TinysenseError("could not align the model packages in the ROMFS image")


def _data_offsets(image: bytes) -> dict[str, int]:
    """{path: offset of its data in `image`} for every file of a ROMFS image (the records of
    extmod/vfs_rom.c: a varint kind and length each; directories and files hold a name)."""
    def uint(pos: int) -> tuple[int, int]:
        value = 0
        while True:
            byte = image[pos]
            value, pos = value << 7 | byte & 0x7F, pos + 1
            if not byte & 0x80:
                return value, pos

    out: dict[str, int] = {}

    def walk(pos: int, end: int, prefix: str) -> None:
        while pos < end:
            kind, pos = uint(pos)
            size, pos = uint(pos)
            nxt = pos + size
            if kind in (4, 5):            # directory, file: name, then records
                n, pos = uint(pos)
                name = prefix + image[pos:pos + n].decode()
                if kind == 4:
                    walk(pos + n, nxt, name + "/")
                else:
                    pos += n
                    while pos < nxt:
                        k, pos = uint(pos)
                        sz, pos = uint(pos)
                        if k == 2:        # verbatim data
                            out[name] = pos
                        pos += sz
            pos = nxt

    size, pos = uint(len(ROMFS_HEADER))
    walk(pos, pos + size, "")
    return out


def _remove_fs_package(node, say: Callable[[str], None]) -> None:
    """Remove /tsnode from the node's filesystem so it cannot shadow /rom/tsnode."""
    from tinysense.node.deploy import parse_scan
    from tinysense.node.snippets import script

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
    from tinysense.node.deploy import deploy

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
    which the supervisor passes to the VM as TSVB_FLASH (ports/unix-vboard/_vboot.py).
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


def _write_image(node, image: bytes, virtual_board=None) -> tuple[str, Path | None, str]:
    """Put `image` in the node's ROMFS and reset so /rom mounts it; (where, image file,
    message). virtual: the board directory's romfs.img and a soft reset; RV32 QEMU: its
    romfs.img and a hard reset (QEMU loads it at start); a board: mpremote's romfs deploy."""
    cfg = node.board
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
    elif node.target.kind == "qemu-rv32":
        from tinysense.targets.qemu.rv32 import board_for_url, hard_reset

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
    return where, image_path, message


def put_models(node, models: dict[str, bytes], say: Callable[[str], None] | None = None
               ) -> list[str]:
    """Put model packages (name -> bytes) in the node's ROMFS partition at /rom/models/ and
    return their paths; the firmware stays where it is: on the filesystem, or (when the node
    runs tsnode from /rom, after `deploy --romfs`) compiled into the new image again. Resets
    the node. For validate and the HIL tests on a node with ROMFS (tinysense.validate)."""
    from tinysense.node.deploy import node_arch

    cfg = node.board
    if not cfg.has_romfs and node.target.kind != "virtual":
        raise TinysenseError(f"board {cfg.name} has no ROMFS partition (romfs_size = 0)")
    in_rom = node.exec("try:\n import tsnode\n print(tsnode.__file__)\nexcept ImportError:\n"
                       " print('')", timeout=10).strip().startswith("/rom/")
    with tempfile.TemporaryDirectory(prefix="tinysense-models-") as tmp:
        files = []
        for name, data in models.items():
            files.append(Path(tmp) / name)
            files[-1].write_bytes(data)
        if in_rom:
            image, _ = build_romfs(node_arch(node), files)
        else:
            with tempfile.TemporaryDirectory(prefix="tinysense-nofw-") as empty:
                image, _ = build_romfs(None, files, src=empty, build_dir=Path(tmp) / "b")
    if cfg.romfs_size and len(image) > cfg.romfs_size:
        raise TinysenseError(f"the ROMFS image is {len(image)} bytes; {cfg.name}'s partition "
                             f"holds {cfg.romfs_size}")
    where, _, message = _write_image(node, image)
    if say:
        say(message)
    return [f"/rom/{MODELS_DIR}/{name}" for name in models]


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
        from tinysense.node.deploy import deploy

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

    from tinysense.node.deploy import node_arch

    arch = node_arch(node)
    image, paths = build_romfs(arch, models, src=src, build_dir=build_dir)
    say(f"romfs: {len(image)} bytes, {len(paths)} files for {arch or 'bytecode'}")
    if rv32:
        from tinysense.targets.qemu.rv32 import ROMFS_MAX

        if len(image) > ROMFS_MAX:
            raise TinysenseError(f"the ROMFS image is {len(image)} bytes; the RV32 QEMU board's "
                                 f"partition holds {ROMFS_MAX}: deploy fewer models")
    elif node.target.kind != "virtual" and len(image) > cfg.romfs_size:
        raise TinysenseError(f"the ROMFS image is {len(image)} bytes; {cfg.name}'s partition "
                             f"holds {cfg.romfs_size}: deploy fewer models (nothing changed)")
    _fs_only_deploy(node, Path(src), say)
    _remove_fs_package(node, say)
    where, image_path, message = _write_image(node, image, virtual_board)
    listed = node.exec("import os\nprint(' '.join(os.listdir('/rom')))", timeout=10).split()
    if "tsnode" not in listed:
        raise TinysenseError(f"after deploying, /rom on the node holds {listed}, not tsnode/: "
                             "the ROMFS image was not mounted")
    say(message)
    return RomfsResult(where, len(image), tuple(paths), message, image_path)
