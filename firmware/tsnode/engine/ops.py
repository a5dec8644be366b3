"""Engine opcode table -> kernel. The opcodes are defined here (the host converter reads them)."""

from micropython import const

from tsnode.engine import kconv

# opcodes (docs/formats/tsm.md): the single definition; host/tinysense/formats/tsm.py reads
# these `_OP_*` lines, tests/host/test_boundary.py checks them against the spec
_OP_FULLY_CONNECTED = const(1)
_OP_CONV_2D = const(2)
_OP_DEPTHWISE_CONV_2D = const(3)
_OP_AVERAGE_POOL_2D = const(4)
_OP_MAX_POOL_2D = const(5)
_OP_MEAN = const(6)
_OP_ADD = const(7)
_OP_MUL = const(8)
_OP_CONCATENATION = const(9)
_OP_PAD = const(10)
_OP_SOFTMAX = const(11)
_OP_LUT = const(12)
_OP_COPY = const(13)
_OP_CONST = const(14)
_OP_REMAP = const(15)
_OP_MAXMIN = const(16)
_OP_SELECT = const(17)
_OP_RMAX = const(18)
_OP_SVDF = const(19)
_OP_SOFTMAX_OUT16 = const(20)
_OP_REQUANT = const(21)
_OP_SOFTMAX_LUT16 = const(22)

NAMES = {_OP_FULLY_CONNECTED: "FULLY_CONNECTED", _OP_CONV_2D: "CONV_2D",
         _OP_DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D", _OP_AVERAGE_POOL_2D: "AVERAGE_POOL_2D",
         _OP_MAX_POOL_2D: "MAX_POOL_2D", _OP_MEAN: "MEAN", _OP_ADD: "ADD", _OP_MUL: "MUL",
         _OP_CONCATENATION: "CONCATENATION", _OP_PAD: "PAD", _OP_SOFTMAX: "SOFTMAX",
         _OP_LUT: "LUT", _OP_COPY: "COPY", _OP_CONST: "CONST", _OP_REMAP: "REMAP",
         _OP_MAXMIN: "MAXMIN", _OP_SELECT: "SELECT",
         _OP_RMAX: "RMAX", _OP_SVDF: "SVDF", _OP_SOFTMAX_OUT16: "SOFTMAX_OUT16",
         _OP_REQUANT: "REQUANT", _OP_SOFTMAX_LUT16: "SOFTMAX_LUT16"}

# parameter words each opcode's record must hold: the count of the named words its kernel
# reads (`_CONV_*` in kconv.py, ...; tests/host/test_boundary.py checks they agree), here so
# that checking a package needs no kernel module; CONCATENATION: kelt.concat_words()
N_PARAMS = {_OP_FULLY_CONNECTED: 27, _OP_CONV_2D: 27, _OP_DEPTHWISE_CONV_2D: 27,
            _OP_AVERAGE_POOL_2D: 16, _OP_MAX_POOL_2D: 16, _OP_MEAN: 15, _OP_ADD: 24,
            _OP_MUL: 24, _OP_PAD: 15, _OP_SOFTMAX: 6, _OP_LUT: 4, _OP_COPY: 3, _OP_CONST: 3,
            _OP_REMAP: 10, _OP_MAXMIN: 18, _OP_SELECT: 5, _OP_RMAX: 11,
            _OP_SVDF: 19, _OP_SOFTMAX_OUT16: 6, _OP_REQUANT: 9,
            _OP_SOFTMAX_LUT16: 8}


def check(code, src, params):
    """Reject a record whose parameter count does not match this engine's kernels."""
    want = N_PARAMS.get(code)
    if code == _OP_CONCATENATION:
        from tsnode.engine import kelt
        want = kelt.concat_words(params)
    if want is None:
        raise ValueError("tsm: op %d has opcode %d, not supported by this engine" % (src, code))
    if len(params) != want:
        raise ValueError("tsm: op %d (%s) has %d parameters, this engine expects %d; "
                         "reconvert the model" % (src, NAMES[code], len(params), want))


# The native module's ABI: what its functions take (arguments, parameter words, arena and
# scratch use). tsnn.c exports it as tsnn.ABI (natmod/tsnn/gen_params.py writes TSNN_ABI into
# its header from this line); a module with another ABI is never run. Bump it with any
# change to a kernel's parameter words (gen_params.py refuses to build when _TSNN_WORDS, the
# a 30-bit CRC-32 of the words it writes, no longer matches them) or to tsnn's calling convention.
_TSNN_ABI = const(2)
_TSNN_WORDS = const(0x1556a3ba)

# the opcodes tsnn has a kernel for
NATIVE = (_OP_FULLY_CONNECTED, _OP_CONV_2D, _OP_DEPTHWISE_CONV_2D, _OP_AVERAGE_POOL_2D,
          _OP_MAX_POOL_2D, _OP_MEAN, _OP_ADD, _OP_MUL, _OP_SOFTMAX, _OP_SVDF)


def native(kernels="auto"):
    """The native-code kernel module (tsnn.mpy, docs/engine.md "Native kernels") for a
    load's `kernels` choice, or None for the viper kernels: "auto" uses it when it imports
    and its ABI is this engine's, "native" requires that (ValueError saying why), "viper"
    never uses it. After a None, `why` says why (None: viper was asked for)."""
    global why
    why = None
    if kernels == "viper":
        return None
    if kernels not in ("auto", "native"):
        raise ValueError("kernels: %r is not one of 'auto', 'native', 'viper'" % (kernels,))
    try:
        import tsnn
    except (ImportError, ValueError) as e:   # absent, or built for another arch
        err = "the native module tsnn cannot be imported (%r)" % (e,)
    else:
        abi = getattr(tsnn, "ABI", None)
        if abi == _TSNN_ABI:
            return tsnn
        err = "tsnn.mpy has ABI %r, this engine needs %d" % (abi, _TSNN_ABI)
    if kernels == "native":
        raise ValueError("kernels='native' but %s: deploy it (build/natmod/<arch>/tsnn.mpy, "
                         "make natmods) or use kernels='viper'" % err)
    why = err
    return None


why = None


def kernel(code, nat=None):
    """The kernel for an opcode: nat's (the tsnn module, see native()) for the opcodes in
    NATIVE when given, else the viper kernel, imported on first use (keeps RAM low for
    small models)."""
    if nat is not None and code in NATIVE and code not in (_OP_FULLY_CONNECTED, _OP_CONV_2D):
        return {_OP_DEPTHWISE_CONV_2D: nat.dwconv, _OP_AVERAGE_POOL_2D: nat.avgpool,
                _OP_MAX_POOL_2D: nat.maxpool, _OP_MEAN: nat.mean, _OP_ADD: nat.add,
                _OP_MUL: nat.mul, _OP_SOFTMAX: nat.softmax, _OP_SVDF: nat.svdf}[code]
    if code in (_OP_FULLY_CONNECTED, _OP_CONV_2D):
        return kconv.conv if nat is None else nat.conv
    if code == _OP_DEPTHWISE_CONV_2D:
        if nat is not None:
            return nat.dwconv
        from tsnode.engine import kdw
        return kdw.dwconv
    if code in (_OP_AVERAGE_POOL_2D, _OP_MAX_POOL_2D, _OP_MEAN):
        from tsnode.engine import kpool
        return (kpool.avgpool, kpool.maxpool, kpool.mean)[code - _OP_AVERAGE_POOL_2D]
    if code in (_OP_ADD, _OP_MUL, _OP_LUT, _OP_CONCATENATION, _OP_PAD, _OP_COPY, _OP_CONST):
        from tsnode.engine import kelt
        return {_OP_ADD: kelt.add, _OP_MUL: kelt.mul, _OP_LUT: kelt.lut,
                _OP_CONCATENATION: kelt.concat, _OP_PAD: kelt.pad, _OP_COPY: kelt.copy,
                _OP_CONST: kelt.constant}[code]
    if code in (_OP_SOFTMAX, _OP_SOFTMAX_OUT16):
        from tsnode.engine import ksoftmax
        return ksoftmax.softmax if code == _OP_SOFTMAX else ksoftmax.softmax_out16
    if code in (_OP_REQUANT, _OP_SOFTMAX_LUT16):   # models with int16 ends only
        from tsnode.engine import kquant
        return kquant.requant if code == _OP_REQUANT else kquant.softmax_lut16
    if code == _OP_REMAP:   # a module of its own: models without shape ops never import it
        from tsnode.engine import kshape
        return kshape.remap
    if code in (_OP_MAXMIN, _OP_SELECT, _OP_RMAX):
        from tsnode.engine import kmisc
        return {_OP_MAXMIN: kmisc.maxmin, _OP_SELECT: kmisc.select,
                _OP_RMAX: kmisc.reduce_max}[code]
    if code == _OP_SVDF:   # its own module, imported by models with an SVDF only
        from tsnode.engine import ksvdf
        return ksvdf.svdf
    raise ValueError("tsm: opcode %d not supported by this engine" % code)
