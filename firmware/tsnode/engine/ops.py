"""Engine opcode table (same numbers as host/tinysense/convert/ops.py OPCODES) -> kernel."""

from tsnode.engine import kconv

FULLY_CONNECTED = 1
CONV_2D = 2
DEPTHWISE_CONV_2D = 3
AVERAGE_POOL_2D = 4
MAX_POOL_2D = 5
MEAN = 6
ADD = 7
MUL = 8
CONCATENATION = 9
PAD = 10
SOFTMAX = 11
LUT = 12
COPY = 13
CONST = 14

NAMES = {1: "FULLY_CONNECTED", 2: "CONV_2D", 3: "DEPTHWISE_CONV_2D", 4: "AVERAGE_POOL_2D",
         5: "MAX_POOL_2D", 6: "MEAN", 7: "ADD", 8: "MUL", 9: "CONCATENATION", 10: "PAD",
         11: "SOFTMAX", 12: "LUT", 13: "COPY", 14: "CONST"}

# parameter words each opcode's record must hold (docs/formats/tsm.md); CONCATENATION: 4 + 2n
N_PARAMS = {1: 27, 2: 27, 3: 27, 4: 16, 5: 16, 6: 15, 7: 24, 8: 24, 10: 15, 11: 6, 12: 4,
            13: 3, 14: 3}


def check(code, src, params):
    """Reject a record whose parameter count does not match this engine's kernels."""
    want = N_PARAMS.get(code)
    if code == CONCATENATION and len(params) >= 4:
        want = 4 + 2 * params[3]
    if want is None:
        raise ValueError("tsm: op %d has opcode %d, not supported by this engine" % (src, code))
    if len(params) != want:
        raise ValueError("tsm: op %d (%s) has %d parameters, this engine expects %d; "
                         "reconvert the model" % (src, NAMES[code], len(params), want))


def kernel(code):
    """The viper kernel for an opcode, imported on first use (keeps RAM low for small models)."""
    if code in (FULLY_CONNECTED, CONV_2D):
        return kconv.conv
    if code == DEPTHWISE_CONV_2D:
        from tsnode.engine import kdw
        return kdw.dwconv
    if code in (AVERAGE_POOL_2D, MAX_POOL_2D, MEAN):
        from tsnode.engine import kpool
        return (kpool.avgpool, kpool.maxpool, kpool.mean)[code - AVERAGE_POOL_2D]
    if code in (ADD, MUL, LUT, CONCATENATION, PAD, COPY, CONST):
        from tsnode.engine import kelt
        return {ADD: kelt.add, MUL: kelt.mul, LUT: kelt.lut, CONCATENATION: kelt.concat,
                PAD: kelt.pad, COPY: kelt.copy, CONST: kelt.const}[code]
    if code == SOFTMAX:
        from tsnode.engine import ksoftmax
        return ksoftmax.softmax
    raise ValueError("tsm: opcode %d not supported by this engine" % code)
