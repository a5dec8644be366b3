"""Print SRDHM(a, b) for every int32 pair in the file argv[1], using the node's helper."""

import struct
import sys
from array import array

from tsnode.engine import ksoftmax

with open(sys.argv[1], "rb") as f:
    raw = f.read()
vals = struct.unpack("<%di" % (len(raw) // 4), raw)
s = array("i", [0] * 8)
out = []
for i in range(0, len(vals), 2):
    s[0] = vals[i]
    s[1] = vals[i + 1]
    ksoftmax._srdhm(s, 0, 1, 2)
    out.append(str(s[2]))
print(" ".join(out))
