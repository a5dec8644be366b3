# MicroPython, run on the node by `tinysense validate` to find the first op that differs.
# Parameters prepended by the host: _INPUT_HEX (the node inputs), _DUMP (op position whose
# outputs to print in full, or -1 for CRCs of every op's outputs).
# Runs the model loaded by tsnode.agent.load() one op at a time, so every op's output is read
# right after the op, before the arena planner lets a later op overwrite it. Prints one line
# per output tensor: "C <op position> <tflite op index> <tensor> <crc32>" or, for _DUMP,
# "T <op position> <tflite op index> <tensor> <hex>".
# ruff: noqa: F821  (the host prepends _INPUT_HEX and _DUMP)
from binascii import crc32, hexlify, unhexlify

from tsnode import agent

_m = agent._state["model"]
if _m is None:
    raise RuntimeError("no model loaded: agent.load(path) first")
_m.set_inputs(unhexlify(_INPUT_HEX))
_k = 0
for (_fn, _p, _c, _s), (_code, _src, _ins, _outs, _par) in zip(_m.plan, _m.pkg.ops()):
    _fn(_m.arena, _m.buf, _p, _m.scratch)
    for _o in _outs:
        _v = _m.tensor_view(_o)
        if _DUMP == _k:
            print("T", _k, _src, _o, hexlify(_v).decode())
        else:
            print("C", _k, _src, _o, crc32(_v) & 0xFFFFFFFF)
    if _DUMP == _k:
        break
    _k += 1
# The REPL keeps globals: drop every reference into the model so the next agent.load() can
# free it (on a 112 KB heap two packages do not fit side by side).
_m = _v = _fn = _p = _par = _ins = _outs = None
del _m, _v, _fn, _p, _c, _s, _code, _src, _ins, _outs, _par, _k
