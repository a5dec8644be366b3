"""The .tsm constants, read from the node engine: opcodes, parameter words, header layout.

Defined once, on the node (docs/formats/tsm.md says where each lives):
- opcodes: `_OP_<NAME> = const(N)` in firmware/tsnode/engine/ops.py;
- parameter words: `_<PREFIX>_<WORD> = const(i)` in the kernel module that reads them
  (`p[_CONV_WEIGHTS]`), prefix per opcode in `KERNELS` below. A word named `WIDE` is the
  one the engine appends at load (not stored); words ending in `_I` repeat per input;
- header: the struct formats, magic, version, `H_<FIELD>` offsets and tensor flags in
  firmware/tsnode/engine/loader.py.

The converter builds each op's words with `params(opcode, name=value, ...)`, so their
order is the kernel's.
"""

from __future__ import annotations

import dataclasses

from tinysense.formats import NodeConstError, node_consts, node_value

_ENGINE = "tsnode/engine/"
_LOADER = _ENGINE + "loader.py"

# opcode -> (kernel module, prefix of its parameter-word constants); ops.kernel() on the node
# dispatches the same opcodes to these modules (tests/host/test_boundary.py checks both).
KERNELS = {
    "FULLY_CONNECTED": ("kconv.py", "CONV"), "CONV_2D": ("kconv.py", "CONV"),
    "DEPTHWISE_CONV_2D": ("kdw.py", "DW"), "AVERAGE_POOL_2D": ("kpool.py", "POOL"),
    "MAX_POOL_2D": ("kpool.py", "POOL"), "MEAN": ("kpool.py", "MEAN"),
    "ADD": ("kelt.py", "ADD"), "MUL": ("kelt.py", "MUL"), "CONCATENATION": ("kelt.py", "CAT"),
    "PAD": ("kelt.py", "PAD"), "SOFTMAX": ("ksoftmax.py", "SM"), "LUT": ("kelt.py", "LUT"),
    "COPY": ("kelt.py", "COPY"), "CONST": ("kelt.py", "CONST"), "REMAP": ("kshape.py", "RM"),
    "MAXMIN": ("kmisc.py", "MM"), "SELECT": ("kmisc.py", "SEL"),
    "RMAX": ("kmisc.py", "RMAX"), "SVDF": ("ksvdf.py", "SVDF"),
    "SOFTMAX_OUT16": ("ksoftmax.py", "SM"), "REQUANT": ("kquant.py", "RQ"),
    "SOFTMAX_LUT16": ("kquant.py", "SL"),
}


@dataclasses.dataclass(frozen=True)
class Layout:
    """One opcode's parameter words as its kernel names them (lower case, prefix dropped)."""

    opcode: str
    words: tuple[str, ...]         # stored words, in order
    each: tuple[str, ...] = ()     # then these, repeated per input (CONCATENATION)
    wide: bool = False             # the kernel reads the engine's appended `wide` word


def _layout(opcode: str) -> Layout:
    module, prefix = KERNELS[opcode]
    head = f"_{prefix}_"
    found = sorted((v, k[len(head):]) for k, v in node_consts(_ENGINE + module).items()
                   if k.startswith(head))
    where = f"firmware/{_ENGINE}{module}: parameter words {head}*"
    if [v for v, _ in found] != list(range(len(found))):
        raise NodeConstError(f"{where} are not numbered 0, 1, 2, ... once each: {found}")
    names = [n.lower() for _, n in found]
    wide = names[-1:] == ["wide"]
    names = names[:-1] if wide else names
    each = [n for n in names if n.endswith("_i")]
    fixed = names[:len(names) - len(each)]
    if names[len(fixed):] != each or (wide and each) or "wide" in fixed:
        raise NodeConstError(f"{where}: per-input words (_I) must come last, WIDE after the "
                             f"stored words and not with per-input words: {names}")
    return Layout(opcode, tuple(fixed), tuple(n[:-2] for n in each), wide)


OPCODES = {k[4:]: v for k, v in node_consts(_ENGINE + "ops.py").items() if k.startswith("_OP_")}
LAYOUTS = {op: _layout(op) for op in OPCODES}
# parameter words each record holds (CONCATENATION: len(words) + len(each) per input)
N_PARAMS = {OPCODES[op]: len(lay.words) for op, lay in LAYOUTS.items() if not lay.each}


def params(opcode: str, each: tuple | list = (), **words) -> list:
    """The parameter words of one `opcode` record in the kernel's order.

    Args:
        opcode: the engine opcode's name (`"CONV_2D"`).
        each: per-input words (CONCATENATION): one dict per input.
        **words: every stored word by its name (`weights=CRef(0), k4=k4, ...`).
    """
    lay = LAYOUTS[opcode]
    groups = [(lay.words, words)] + [(lay.each, e) for e in each]
    for names, given in groups:
        if set(names) != set(given):
            raise ValueError(f"{opcode} parameter words: missing "
                             f"{sorted(set(names) - set(given))}, unknown "
                             f"{sorted(set(given) - set(names))}")
    return [given[n] for names, given in groups for n in names]


# header, tensor record and op record layouts (the node's struct formats: one definition)
MAGIC = node_value(_LOADER, "MAGIC")
VERSION = node_value(_LOADER, "VERSION")
HEADER_SIZE = node_value(_LOADER, "HEADER_SIZE")
# the CRC field [at, end): the CRC covers every other byte of the file
CRC_SPAN = (node_value(_LOADER, "_CRC_AT"), node_value(_LOADER, "_CRC_END"))
HEADER_FORMAT = node_value(_LOADER, "_HEADER")     # the fields up to the reserved tail
TENSOR_FORMAT = node_value(_LOADER, "_TENSOR")
TENSOR_SIZE = node_value(_LOADER, "_TENSOR_SIZE")
OPHEAD_FORMAT = node_value(_LOADER, "_OPHEAD")
OPHEAD_SIZE = node_value(_LOADER, "_OPHEAD_SIZE")
# header field offsets the node reads by offset (before parsing the whole header)
HEADER_OFFSETS = {k[2:].lower(): v for k, v in node_consts(_LOADER).items()
                  if k.startswith("H_")}
F_CONST = node_value(_LOADER, "F_CONST")
F_INPUT = node_value(_LOADER, "F_INPUT")
F_OUTPUT = node_value(_LOADER, "F_OUTPUT")
F_STATE = node_value(_LOADER, "F_STATE")
# the dtype codes the node reads (a state tensor's reset value); the others are host-only
DT_INT8 = node_value(_LOADER, "DT_INT8")
DT_INT16 = node_value(_LOADER, "DT_INT16")
