"""`tinysense deploy --romfs` on any --target: ROMFS where the target has it, else the fallback.

virtual: the image becomes the board directory's romfs.img, mounted at /rom after a reset.
A board with a ROMFS partition (romfs_size > 0): mpremote's romfs deploy writes it.
A board without: the filesystem deploy, and the result says so.
The test puts the node back as it found it (filesystem deploy, no virtual romfs.img).
"""

from __future__ import annotations

import pytest

from tinysense.flash.romfs import deploy_romfs

pytestmark = pytest.mark.hil

MODEL = bytes((i * 11 + 5) & 0xFF for i in range(4096))   # stands in for a .tsm package


def test_deploy_romfs_on_target(node, tmp_path):
    model = tmp_path / "hil_model.tsm"
    model.write_bytes(MODEL)
    lines: list[str] = []
    result = None
    try:
        result = deploy_romfs(node, [model], say=lines.append)
        assert result.message in lines
        if result.where == "filesystem":
            assert not node.board.has_romfs and "no ROMFS partition" in result.message
            assert node.get("/models/hil_model.tsm") == MODEL
            return
        assert result.where in ("virtual-romfs", "romfs-partition")
        assert "/rom/models/hil_model.tsm" in result.files
        out = node.exec("import tsnode\nprint(tsnode.__file__)\n"
                        "m = memoryview(open('/rom/models/hil_model.tsm', 'rb'))\n"
                        "print(len(m), bytes(m[100:108]).hex())")
        where, sizes = out.strip().splitlines()
        assert where.startswith("/rom/tsnode/")
        assert sizes == f"{len(MODEL)} {MODEL[100:108].hex()}"
    finally:
        if result is not None and result.image_path is not None:
            result.image_path.unlink()
        node.soft_reset()
        node.deploy(progress=None)        # the other hil tests expect a filesystem deploy
