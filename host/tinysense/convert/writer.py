"""Pack a lowered, planned model into the .tsm byte layout (docs/formats/tsm.md)."""

from __future__ import annotations

import binascii
import os
import struct
import tempfile
from pathlib import Path

from tinysense.convert.ops import CRef, TRef
from tinysense.formats import tsm

# the layout is the node loader's (firmware/tsnode/engine/loader.py, read by formats.tsm)
MAGIC = tsm.MAGIC
VERSION = tsm.VERSION
HEADER = struct.Struct(tsm.HEADER_FORMAT + "8s")   # + the 8 reserved bytes: 64
TENSOR = struct.Struct(tsm.TENSOR_FORMAT)          # 36 bytes
OPHEAD = struct.Struct(tsm.OPHEAD_FORMAT)          # 16 bytes
# dtype codes: int8 and int16 are the node's (a state tensor's reset value), the others and
# the HOST_* flags are host-only (docs/formats/tsm.md)
DTYPE_CODES = {"int8": tsm.DT_INT8, "int32": 2, "float32": 3, "int16": tsm.DT_INT16,
               "uint8": 5}
F_CONST, F_INPUT, F_OUTPUT, F_STATE = tsm.F_CONST, tsm.F_INPUT, tsm.F_OUTPUT, tsm.F_STATE
F_HOST_QUANTIZE, F_HOST_DEQUANTIZE = 8, 16
assert (HEADER.size, TENSOR.size, OPHEAD.size) == (tsm.HEADER_SIZE, tsm.TENSOR_SIZE,
                                                   tsm.OPHEAD_SIZE)


def _pad4(b: bytes | bytearray) -> bytes:
    return bytes(b) + b"\0" * (-len(b) % 4)


def pack(tensor_rows, lowered, inputs, outputs, arena_size, scratch_size, offsets) -> bytes:
    """tensor_rows: (dtype, shape, flags, offset, nbytes, zp, scale) per tensor.

    lowered: Lowered ops (with TRef/CRef params); offsets: tensor index -> arena offset.
    """
    n_t = len(tensor_rows)
    tensors_off = HEADER.size
    ops_off = tensors_off + n_t * TENSOR.size
    # op records first with placeholder constant offsets, to learn the section sizes
    op_sizes = [OPHEAD.size + 4 * ((len(lo.inputs) + len(lo.outputs) + 1) // 2)
                + 4 * len(lo.params) for lo in lowered]
    ops_size = sum(op_sizes)
    io_off = ops_off + ops_size
    io = struct.pack(f"<{len(inputs) + len(outputs)}H", *inputs, *outputs)
    const_off = io_off + len(_pad4(io))
    const = bytearray()
    blob_at = []
    for lo in lowered:
        at = []
        for blob in lo.blobs:
            at.append(const_off + len(const))
            const += _pad4(blob)
        blob_at.append(at)
    body = bytearray()
    for dtype, shape, flags, off, nbytes, zp, scale in tensor_rows:
        dims = list(shape) + [0] * (4 - len(shape))
        body += TENSOR.pack(DTYPE_CODES.get(dtype, 0), len(shape), flags, 0, *dims, off,
                            nbytes, zp, scale)
    for lo, at in zip(lowered, blob_at):
        words = []
        for p in lo.params:
            if isinstance(p, TRef):
                words.append(offsets[p.tensor] + p.plus)
            elif isinstance(p, CRef):
                words.append(at[p.blob])
            else:
                words.append(int(p))
        idx = list(lo.inputs) + list(lo.outputs)
        idx += [0xFFFF] * (len(idx) % 2)
        c_start = at[0] if at else 0
        c_len = sum(len(b) + (-len(b) % 4) for b in lo.blobs)
        body += OPHEAD.pack(lo.opcode, len(lo.inputs), len(lo.outputs), 0, len(words),
                            lo.op.index, c_start, c_len)
        body += struct.pack(f"<{len(idx)}H", *idx)
        body += struct.pack(f"<{len(words)}i", *words)
    body += _pad4(io)
    assert HEADER.size + len(body) == const_off
    body += const
    total = HEADER.size + len(body)
    fields = (total, n_t, len(lowered), len(inputs), len(outputs), 0, arena_size,
              scratch_size, tensors_off, ops_off, ops_size, const_off, len(const), io_off,
              b"\0" * 8)
    head = HEADER.pack(MAGIC, VERSION, HEADER.size, 0, 0, *fields)
    return seal(head + bytes(body))


def seal(package: bytes | bytearray) -> bytes:
    """`package` with its CRC field set: CRC-32 of every byte but the field's own four
    (docs/formats/tsm.md)."""
    b = bytearray(package)
    at, end = tsm.CRC_SPAN
    crc = binascii.crc32(b[end:], binascii.crc32(b[:at])) & 0xFFFFFFFF
    b[at:end] = crc.to_bytes(4, "little")
    return bytes(b)


def write_atomic(data: bytes, out_path: str | Path) -> Path:
    """Write to a temp file in the same directory, then rename: no partial file on failure."""
    out = Path(out_path)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return out
