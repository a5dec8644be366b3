"""Host/node boundary: every shared constant is the node's, and both agree with the specs.

The host reads the node's definitions from firmware/ (tinysense.formats); these tests check
them against the specs in docs/ (an independent third copy, written by hand), so a changed
opcode, parameter word, header offset, record id or line prefix on either side fails here.
The marked requantization copies in the viper kernels must be identical text.
"""

from __future__ import annotations

import re
import struct
import textwrap
from pathlib import Path

import pytest

from tinysense.convert import ops as conv_ops
from tinysense.convert import writer
from tinysense.formats import app, node_consts, node_value, tsm

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "firmware" / "tsnode" / "engine"
TSM_MD = (REPO / "docs" / "formats" / "tsm.md").read_text()


def _section(md: str, title: str) -> str:
    start = md.index(title)
    nxt = md.find("\n## ", start + 1)
    return md[start:nxt if nxt > 0 else len(md)]


def _rows(text: str) -> list[list[str]]:
    """Table rows whose first cell is a number (the header row and rule excluded)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if re.match(r"\|\s*\d", line)]


def _expand(group: str) -> list[str]:
    """`@input @output d0..d3 &t1` -> ["input", "output", "d0", "d1", "d2", "d3", "t1"]."""
    out = []
    for tok in group.split():
        tok = tok.lstrip("@&")
        m = re.fullmatch(r"([a-z_]+)(\d)\.\.([a-z_]+)(\d)", tok)
        out += ([f"{m[1]}{i}" for i in range(int(m[2]), int(m[4]) + 1)] if m else [tok])
    return out


def _spec_ops() -> dict[str, tuple[int, tuple, tuple]]:
    """{op: (code, words, per-input words)} from tsm.md's opcode table."""
    rows = {op.split()[0]: (int(code), words) for code, op, words in
            _rows(_section(TSM_MD, "## Opcodes and parameters"))}
    by_code = {code: name for name, (code, _w) in rows.items()}

    def words_of(name):
        words = rows[name][1]
        if words.startswith("as "):        # "as CONV_2D with ..."
            return words_of(words.split()[1].rstrip(","))
        if words.startswith("same as "):   # "same as 4"
            return words_of(by_code[int(words.split()[2])])
        groups = re.findall(r"`([^`]*)`", words)
        return tuple(_expand(groups[0])), tuple(_expand(groups[1])) if len(groups) > 1 else ()

    return {name: (code,) + words_of(name) for name, (code, _w) in rows.items()}


def test_opcodes_match_spec_on_both_sides():
    spec = {op: v[0] for op, v in _spec_ops().items()}
    assert tsm.OPCODES == spec, "opcodes (firmware/tsnode/engine/ops.py) differ from tsm.md"
    assert conv_ops.OPCODES == spec
    names = node_value("tsnode/engine/ops.py", "NAMES")
    assert names == {code: op for op, code in spec.items()}, "ops.NAMES differs from _OP_*"


def test_parameter_words_match_spec_converter_and_kernels():
    """Names, order and count: tsm.md's table == the kernels' `_<PREFIX>_*` constants (which
    the converter builds records by) == the node's N_PARAMS check table."""
    for op, (_code, words, each) in _spec_ops().items():
        lay = tsm.LAYOUTS[op]
        assert (lay.words, lay.each) == (words, each), (
            f"{op}: tsm.md says {words} + {each} per input, firmware/tsnode/engine/"
            f"{tsm.KERNELS[op][0]} defines {lay.words} + {lay.each}")
    node_n = node_value("tsnode/engine/ops.py", "N_PARAMS")
    assert node_n == tsm.N_PARAMS == conv_ops.N_PARAMS
    assert set(node_n) == {tsm.OPCODES[op] for op, lay in tsm.LAYOUTS.items() if not lay.each}
    # the word the engine appends at load is the last one a kernel reads
    for op, lay in tsm.LAYOUTS.items():
        module, prefix = tsm.KERNELS[op]
        wide = node_consts(f"tsnode/engine/{module}").get(f"_{prefix}_WIDE")
        assert wide in (None, len(lay.words)), op
    # ADD and MUL share one kernel, which reads their common words by the ADD names
    add, mul = (node_consts("tsnode/engine/kelt.py") for _ in range(2))
    add = {k[5:]: v for k, v in add.items() if k.startswith("_ADD_")}
    mul = {k[5:]: v for k, v in mul.items() if k.startswith("_MUL_")}
    assert {k: add[k] for k in add.keys() & mul.keys()} == {k: mul[k] for k in
                                                            add.keys() & mul.keys()}
    # the concatenation check on the node uses the same per-input stride
    kelt = (ENGINE / "kelt.py").read_text()
    assert len(tsm.LAYOUTS["CONCATENATION"].each) == 2
    assert "_CAT_INPUT_I + 2 * params[_CAT_N_IN]" in kelt and "_CAT_INNER_I + 2 * k" in kelt


def test_kernels_read_parameter_words_by_name():
    """No bare p[17] in a kernel: every p[...] names a constant of that module's layouts."""
    prefixes: dict[str, set[str]] = {}
    for module, prefix in tsm.KERNELS.values():
        prefixes.setdefault(module, set()).add(prefix)
    for module, mine in prefixes.items():
        text = (ENGINE / module).read_text()
        consts = node_consts(f"tsnode/engine/{module}")
        assert not re.findall(r"\bp\[\s*\d", text), f"{module}: bare parameter index"
        used = set(re.findall(r"\bp\[\s*(_[A-Z0-9_]+)", text))
        assert used, module
        for name in used:
            assert name in consts and name.split("_")[1] in mine, f"{module}: p[{name}]"
        for k in consts:   # every word is read, by its name or (MUL) by ADD's same word
            alias = k.replace("_MUL_", "_ADD_")
            if k.split("_")[1] in mine and k not in UNREAD_WORDS:
                assert k in used or alias in used, f"{module}: {k} is never read"


# stored words no viper kernel reads: CONV's k (the unpadded row length, k4's source)
UNREAD_WORDS = {"_CONV_K"}


def _field_offsets(fmt: str) -> list[int]:
    """Offset of each field of a struct format ("4I" and "8s" count as one field)."""
    offs, at = [], ""
    for count, ch in re.findall(r"(\d*)([a-zA-Z])", fmt[1:]):
        offs.append(struct.calcsize("<" + at))
        at += count + ch
    return offs


def test_tsm_layout_matches_spec():
    header = _rows(_section(TSM_MD, "## Header"))
    assert _field_offsets(writer.HEADER.format) == [int(r[0]) for r in header]
    fields = {r[2]: int(r[0]) for r in header}
    assert tsm.HEADER_OFFSETS and all(fields[k] == v for k, v in tsm.HEADER_OFFSETS.items())
    assert tsm.HEADER_SIZE == writer.HEADER.size == int(re.search(
        r"## Header \((\d+) bytes\)", TSM_MD)[1])
    assert f'`b"{tsm.MAGIC.decode()}"`' in header[0][3]
    assert f"`{tsm.VERSION}`" in header[1][3]
    assert TSM_MD.startswith(f"# The `.tsm` model package (version {tsm.VERSION})")
    tensor = _rows(_section(TSM_MD, "## Tensor record"))
    assert _field_offsets(tsm.TENSOR_FORMAT) == [int(r[0]) for r in tensor]
    assert struct.calcsize(tsm.TENSOR_FORMAT) == tsm.TENSOR_SIZE == int(re.search(
        r"## Tensor record \((\d+) bytes\)", TSM_MD)[1])
    flags = next(r[3] for r in tensor if r[2] == "flags")
    for name in ("CONST", "INPUT", "OUTPUT"):
        bit = getattr(tsm, "F_" + name).bit_length() - 1
        assert f"bit{bit} {name}" in flags
    op = _rows(_section(TSM_MD, "## Op record"))
    heads = _field_offsets(tsm.OPHEAD_FORMAT)
    assert heads == [int(r[0]) for r in op][:len(heads)]
    assert struct.calcsize(tsm.OPHEAD_FORMAT) == tsm.OPHEAD_SIZE == int(op[len(heads)][0])


def test_app_record_ids_and_line_prefixes_match_specs():
    """Record ids and event codes as docs/app.md lists them; the serial prefixes as uplink.md."""
    app_md = (REPO / "docs" / "app.md").read_text()
    listed = {name: int(num) for num, name in
              re.findall(r"(?:event|reading|events|,) (\d+) ([A-Z_]+)", app_md)}
    ids = {k.split("_", 1)[1]: v for k, v in app.RECORD_IDS.items()}
    for name, num in listed.items():
        assert ids[name] == num, f"{name}: docs/app.md says {num}, report.py {ids[name]}"
    assert len(listed) >= 10
    uplink_md = (REPO / "docs" / "formats" / "uplink.md").read_text()
    assert f"`{app.SERIAL_FRAME_PREFIX}<base64(frame)>" in uplink_md
    assert f"`{app.SERIAL_ACK_PREFIX}<base64(ack frame)>" in uplink_md
    from tinysense import demo
    from tinysense.gateway import serial_lines
    from tinysense.monitor import frames
    assert serial_lines.SERIAL_FRAME_PREFIX.decode() == frames.PREFIX == app.SERIAL_FRAME_PREFIX
    assert (demo.ID_OUTPUT, demo.EV_WINDOW) == (ids["OUTPUT"], ids["WINDOW"])


def test_recording_constants_match_spec():
    from tinysense.formats import recording as recordings
    md = (REPO / "docs" / "formats" / "recording.md").read_text()
    assert f"| 0 | 4 | magic `{recordings.MAGIC.decode()}` |" in md
    assert f"| 4 | 1 | version, {recordings.VERSION} |" in md
    assert f"({recordings.UNLABELLED}: unlabelled)" in md


REQUANT = re.compile(r"^( *)# --- requant begin ---\n(.*?)^\1# --- requant end ---$",
                     re.M | re.S)
# Where a copy genuinely needs other names, list (module, old, new) substitutions here; there
# are none: all nine copies read a, m, s, h30, wide, zo and leave the result in t.
REQUANT_SUBSTITUTIONS: list[tuple[str, str, str]] = []


def test_requantization_copies_are_identical():
    """docs/engine.md: the block is repeated per kernel for speed; the copies cannot drift."""
    copies = []
    for module in ("kconv.py", "kdw.py", "kelt.py", "kpool.py", "ksvdf.py", "kquant.py"):
        text = (ENGINE / module).read_text()
        for indent, body in REQUANT.findall(text):
            body = textwrap.dedent(body)
            for mod, old, new in REQUANT_SUBSTITUTIONS:
                body = body.replace(old, new) if mod == module else body
            copies.append((module, body))
        assert text.count("# --- requant begin ---") == text.count("# --- requant end ---")
    assert len(copies) == 9
    first = copies[0][1]
    assert "t = (a * m + h30) >> 31" in first and first.rstrip().endswith("t += zo")
    for module, body in copies[1:]:
        assert body == first, f"{module}: requantization copy differs from kconv.py's"


@pytest.mark.parametrize("path", sorted((REPO / "firmware").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(REPO / "firmware")))
def test_firmware_constants_are_readable(path):
    """Every `const()` in the firmware is one the host's reader understands."""
    node_consts(str(path.relative_to(REPO / "firmware")))
