# Shared by scan.py and sha256.py (script() prepends it): _ts_hash(path, buf) is the file's
# hex sha256, or "-" when it cannot be opened. Reads through buf, so a large file needs no
# large allocation. The snippet that uses it deletes _ts_hash at its end.
import hashlib
import binascii


def _ts_hash(path, buf):
    try:
        f = open(path, "rb")
    except OSError:
        return "-"
    h = hashlib.sha256()
    mv = memoryview(buf)
    while True:
        n = f.readinto(buf)
        if not n:
            break
        h.update(mv[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
