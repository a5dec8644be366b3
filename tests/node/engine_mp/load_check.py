"""Load a .tsm (argv[1]; `stream:PATH` streams constants) and print `ok` plus the outputs
for hex inputs (argv[2:]), or the error."""

import sys
from binascii import hexlify, unhexlify

from tsnode.engine.model import Model, open_streaming

try:
    if sys.argv[1].startswith("stream:"):
        m = open_streaming(sys.argv[1][7:])
    else:
        with open(sys.argv[1], "rb") as f:
            m = Model(f.read())
except ValueError as exc:
    print("ValueError", exc)
    sys.exit(0)
print("ok")
for h in sys.argv[2:]:
    m.set_inputs(unhexlify(h))
    m.run()
    print(hexlify(m.output_bytes()).decode())
