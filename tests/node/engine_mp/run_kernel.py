"""Run one engine kernel on the unix port: micropython run_kernel.py MODULE.FUNC DIR [narrow].

DIR holds arena.bin, const.bin, params.bin (int32 LE) and scratch (a decimal size). The
kernel's params get the `wide` word appended as the engine does; prints the arena as hex.
"""

import struct
import sys
from array import array
from binascii import hexlify

import tsnode.engine.model as M

mod_name, fn_name = sys.argv[1].rsplit(".", 1)
mod = __import__("tsnode.engine." + mod_name, None, None, [fn_name])
fn = getattr(mod, fn_name)
d = sys.argv[2]


def read(name):
    with open(d + "/" + name, "rb") as f:
        return f.read()


arena = bytearray(read("arena.bin"))
const = bytearray(read("const.bin"))
raw = read("params.bin")
params = array("i", struct.unpack("<%di" % (len(raw) // 4), raw))
params.append(0 if len(sys.argv) > 3 and sys.argv[3] == "narrow" else M._wide())
scratch = bytearray(int(read("scratch")))
fn(arena, const, params, scratch)
print(hexlify(arena).decode())
