# MicroPython, run on the node by `tinysense validate` to find the first op that differs.
# The host first writes the node inputs into the arena (agent.put_input, in chunks) and
# prepends _DUMP (op position whose outputs to print in full, or -1 for CRCs of every op's
# outputs).
# Runs the model loaded by tsnode.agent.load() one op at a time (Model.run_op, which also
# streams an op's constants when the package is streamed), so every op's output is read right
# after the op, before a later op reuses its arena memory. One exec and a CRC per tensor, not
# one exec and a hex dump per op: on a 115200-baud board that is seconds instead of minutes.
# Prints one line per output tensor: "C <op position> <tflite op index> <tensor> <crc32>"
# or, for _DUMP, "T <op position> <tflite op index> <tensor> <hex>".
# ruff: noqa: F821
from binascii import crc32, hexlify

from tsnode import agent

_m = agent._state["model"]
if _m is None:
    raise RuntimeError("no model loaded: agent.load(path) first")
_k = 0
for _op in _m.pkg.ops():
    _m.run_op(_k)
    for _o in _op[3]:
        _v = _m.tensor_view(_o)
        if _DUMP == _k:
            print("T", _k, _op[1], _o, hexlify(_v).decode())
        else:
            print("C", _k, _op[1], _o, crc32(_v) & 0xFFFFFFFF)
        _v = None
    if _DUMP == _k:
        break
    _k += 1
# The REPL keeps globals: drop every reference into the model so the next agent.load() can
# free it (on a 112 KB heap two packages do not fit side by side).
_m = _v = _op = None
del _m, _v, _op, _o, _k
