"""Constants the host shares with the node, read from the node's own source (firmware/).

Every constant that crosses the host/node boundary (opcodes, parameter words, header
offsets, record ids, line prefixes) is defined once, in the firmware module that uses it,
usually as `_NAME = const(N)` (free at run time on the node: the compiler inlines it, and a
name starting with `_` takes no RAM). The host never imports firmware modules; it parses
their text with `ast` (`node_consts`) and takes the values from there.

Only what MicroPython's `const()` accepts is read: int, str and bytes literals and integer
expressions over earlier constants; plain module-level literals (`PREFIX = "TSF1 "`) and
literal dicts whose keys or values are such constants are read too. Anything else raises,
so a definition the host cannot read is an error, never a silent default.
"""

from __future__ import annotations

import ast
import functools
import operator

from tinysense.errors import TinysenseError
from tinysense.paths import FIRMWARE_DIR, installed_data_missing

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
           ast.BitAnd: operator.and_, ast.BitXor: operator.xor, ast.FloorDiv: operator.floordiv}


class NodeConstError(TinysenseError):
    pass


def _eval(node: ast.AST, names: dict, where: str):
    """The value of a constant expression, or NodeConstError naming the line."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, str, bytes)):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, names, where)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left, names, where),
                                      _eval(node.right, names, where))
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(e, names, where) for e in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_eval(k, names, where): _eval(v, names, where)
                for k, v in zip(node.keys, node.values)}
    raise NodeConstError(f"{where}:{node.lineno}: not a constant the host can read "
                         f"({ast.unparse(node)[:60]})")


def _is_const_call(v: ast.AST) -> bool:
    return (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "const"
            and len(v.args) == 1 and not v.keywords)


@functools.lru_cache(maxsize=None)
def _read(relpath: str) -> tuple[dict, dict]:
    path = FIRMWARE_DIR / relpath
    try:
        text = path.read_text()
    except OSError as exc:
        raise NodeConstError(installed_data_missing() or
                             f"cannot read {path} ({exc.strerror}): the host takes the "
                             "constants it shares with the node from the firmware's source; "
                             "set TINYSENSE_ROOT to the repository") from None
    consts: dict = {}
    values: dict = {}
    where = f"firmware/{relpath}"
    for st in ast.parse(text, filename=str(path)).body:   # module level only
        if not (isinstance(st, ast.Assign) and len(st.targets) == 1
                and isinstance(st.targets[0], ast.Name)):
            continue
        name, v = st.targets[0].id, st.value
        if _is_const_call(v):
            consts[name] = _eval(v.args[0], consts, where)
        else:
            try:
                values[name] = _eval(v, consts, where)
            except NodeConstError:
                continue   # not a literal: code, not a shared constant
    return consts, values


def node_consts(relpath: str) -> dict:
    """`{NAME: value}` of every module-level `NAME = const(...)` in firmware/`relpath`, in
    source order (e.g. `node_consts("tsnode/engine/ops.py")["_CONV_2D"] == 2`)."""
    return dict(_read(relpath)[0])


def node_value(relpath: str, name: str):
    """A module-level constant or literal of firmware/`relpath`: a `const()` or a plain
    literal assignment (`PREFIX = "TSF1 "`); raises NodeConstError if there is none."""
    consts, values = _read(relpath)
    if name in consts:
        return consts[name]
    if name in values:
        return values[name]
    raise NodeConstError(f"firmware/{relpath} defines no constant {name}: the host reads it "
                         "from there (host/tinysense/formats/)")
