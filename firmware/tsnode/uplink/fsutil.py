"""Small flash-filesystem helpers for the uplink: path join, atomic write, CRC-32."""

import os

try:
    from binascii import crc32
except ImportError:  # a port built without binascii.crc32: bitwise, fine for tiny records

    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF


def join(root, name):
    if not root:
        return name
    return root + name if root.endswith("/") else root + "/" + name


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def write_atomic(path, data):
    """Write data to path.tmp, then rename over path: path is always old or new, whole.

    littlefs and POSIX rename replace the target atomically. Filesystems whose rename
    refuses an existing target (FAT) get remove + rename, which is not atomic; callers
    that need safety there keep two copies (the counter store does).
    """
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
        return
    except OSError:
        pass
    if path.startswith("/") and os.getcwd() == "/":
        # The unix port's VfsPosix mounted at "/" (the virtual board) fails a rename whose
        # two paths are both absolute (they share one path buffer); relative to "/" works.
        try:
            os.rename(tmp[1:], path[1:])
            return
        except OSError:
            pass
    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(tmp, path)


def remove(path):
    try:
        os.remove(path)
        return True
    except OSError:
        return False
