"""Engine opcode table (same numbers as host/tinysense/convert/ops.py OPCODES) -> kernel."""

from micropython import const

from tsnode.engine import kconv

_FULLY_CONNECTED = const(1)
_CONV_2D = const(2)
_DEPTHWISE_CONV_2D = const(3)
_AVERAGE_POOL_2D = const(4)
_MAX_POOL_2D = const(5)
_MEAN = const(6)
_ADD = const(7)
_MUL = const(8)
_CONCATENATION = const(9)
_PAD = const(10)
_SOFTMAX = const(11)
_LUT = const(12)
_COPY = const(13)
_CONST = const(14)

NAMES = {1: "FULLY_CONNECTED", 2: "CONV_2D", 3: "DEPTHWISE_CONV_2D", 4: "AVERAGE_POOL_2D",
         5: "MAX_POOL_2D", 6: "MEAN", 7: "ADD", 8: "MUL", 9: "CONCATENATION", 10: "PAD",
         11: "SOFTMAX", 12: "LUT", 13: "COPY", 14: "CONST"}

# parameter words each opcode's record must hold (docs/formats/tsm.md); CONCATENATION: 4 + 2n
N_PARAMS = {1: 27, 2: 27, 3: 27, 4: 16, 5: 16, 6: 15, 7: 24, 8: 24, 10: 15, 11: 6, 12: 4,
            13: 3, 14: 3}


def check(code, src, params):
    """Reject a record whose parameter count does not match this engine's kernels."""
    want = N_PARAMS.get(code)
    if code == _CONCATENATION and len(params) >= 4:
        want = 4 + 2 * params[3]
    if want is None:
        raise ValueError("tsm: op %d has opcode %d, not supported by this engine" % (src, code))
    if len(params) != want:
        raise ValueError("tsm: op %d (%s) has %d parameters, this engine expects %d; "
                         "reconvert the model" % (src, NAMES[code], len(params), want))


def kernel(code):
    """The viper kernel for an opcode, imported on first use (keeps RAM low for small models)."""
    if code in (_FULLY_CONNECTED, _CONV_2D):
        return kconv.conv
    if code == _DEPTHWISE_CONV_2D:
        from tsnode.engine import kdw
        return kdw.dwconv
    if code in (_AVERAGE_POOL_2D, _MAX_POOL_2D, _MEAN):
        from tsnode.engine import kpool
        return (kpool.avgpool, kpool.maxpool, kpool.mean)[code - _AVERAGE_POOL_2D]
    if code in (_ADD, _MUL, _LUT, _CONCATENATION, _PAD, _COPY, _CONST):
        from tsnode.engine import kelt
        return {_ADD: kelt.add, _MUL: kelt.mul, _LUT: kelt.lut, _CONCATENATION: kelt.concat,
                _PAD: kelt.pad, _COPY: kelt.copy, _CONST: kelt.const}[code]
    if code == _SOFTMAX:
        from tsnode.engine import ksoftmax
        return ksoftmax.softmax
    raise ValueError("tsm: opcode %d not supported by this engine" % code)
