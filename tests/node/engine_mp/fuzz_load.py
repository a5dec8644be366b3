"""Load many corrupted copies of a package (argv[1]); print one line per outcome kind.

Every copy must be refused with ValueError("tsm: ...") (flips, truncation, padding).
"""

import random
import sys

from tsnode.engine.model import Model

with open(sys.argv[1], "rb") as f:
    good = f.read()
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
kinds = {}
for i in range(200):
    b = bytearray(good)
    r = random.getrandbits(2)
    if r == 0:
        b = b[:random.getrandbits(16) % len(b)]
    elif r == 1:
        b += bytes(1 + random.getrandbits(4))
    else:
        for _ in range(1 + random.getrandbits(2)):
            p = random.getrandbits(16) % len(b)
            b[p] = b[p] ^ (1 + random.getrandbits(7))
    try:
        Model(bytes(b))
        k = "accepted"
    except ValueError as exc:
        k = "ValueError tsm" if str(exc).startswith("tsm:") else "ValueError other"
    except Exception as exc:  # noqa: BLE001 (any other type is what the test reports)
        k = type(exc).__name__
    kinds[k] = kinds.get(k, 0) + 1
for k in sorted(kinds):
    print(k, kinds[k])
