# tinysense RV32 QEMU board start-up (frozen): mount the flash file at / and ROMFS at /rom,
# as an esp32 board's _boot.py mounts its flash partition. boot.py and main.py run after.
import vfs

try:
    import tsflash

    _dev = tsflash.Flash("flash.img", 4096)
    try:
        vfs.mount(vfs.VfsLfs2(_dev), "/")
    except OSError:
        vfs.VfsLfs2.mkfs(_dev)
        vfs.mount(vfs.VfsLfs2(_dev), "/")
except OSError:
    print("tsboard: no flash.img in QEMU's working directory; running without a filesystem")

try:
    vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, 0)), "/rom")
except (OSError, AttributeError, TypeError):
    pass

import sys

sys.path.append("/lib")   # as an esp32 port's sys.path (where deploy puts tsnn.mpy)
sys.path.append("/rom/lib")
del sys, vfs
