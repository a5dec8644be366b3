"""Load every truncation and every one-byte flip of a package (argv[1]); print one line per
outcome kind: `<case> <outcome> <count>`.

argv[2], argv[3]: the CRC field's span (the host's tsm.CRC_SPAN): `resealed` cases flip a byte
and then recompute the CRC, as a crafted package would, so the checks behind the CRC are
reached. A package that loads is run once (inputs zero), except when the flip was in the op
table (an op's opcode and parameter words are checked by count, not by value: they are
trusted once the CRC holds, docs/formats/tsm.md). argv[4] "stream": load
through open_streaming from a file instead (flips before const_off only, plus truncations).
"""

import struct
import sys
from binascii import crc32

from tsnode.engine.model import Model, open_streaming

with open(sys.argv[1], "rb") as f:
    good = f.read()
at, end = int(sys.argv[2]), int(sys.argv[3])
stream = len(sys.argv) > 4 and sys.argv[4] == "stream"
ops_off, ops_size, const_off = struct.unpack_from("<III", good, 36)[0:3]
ops_end = ops_off + ops_size
TMP = sys.argv[1] + ".case"
kinds = {}


def seal(b):
    c = crc32(b[end:], crc32(b[:at])) & 0xFFFFFFFF
    b[at:end] = struct.pack("<I", c)


def load(b, run):
    try:
        if stream:
            with open(TMP, "wb") as f:
                f.write(b)
            m = open_streaming(TMP)
        else:
            m = Model(bytes(b))
        if run:
            m.set_inputs(bytes(m.input_bytes()))
            m.run()
        if stream:
            m.file.close()
        return "accepted"
    except ValueError as exc:
        return "ValueError-tsm" if str(exc).startswith("tsm:") else "ValueError-other:" + str(exc)
    except Exception as exc:  # noqa: BLE001 (any other type is what the test reports)
        return type(exc).__name__ + ":" + str(exc)


def count(case, outcome):
    k = case + " " + outcome
    kinds[k] = kinds.get(k, 0) + 1


for n in range(len(good)):
    count("truncated", load(bytearray(good[:n]), False))
count("padded", load(bytearray(good + b"\0"), False))
last = const_off if stream else len(good)
for pos in range(last):
    for x in (0x01, 0x80):
        b = bytearray(good)
        b[pos] ^= x
        count("flipped", load(b, False))
        if at <= pos < end:
            continue   # flipping the CRC itself: resealing restores the original
        seal(b)
        case = "resealed-scratch" if 28 <= pos < 32 else "resealed"   # H_SCRATCH_SIZE
        count(case, load(b, not ops_off <= pos < ops_end))
count("original", load(bytearray(good), True))
for k in sorted(kinds):
    print(k, kinds[k])
