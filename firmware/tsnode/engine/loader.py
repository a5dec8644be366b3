"""Parse and check a .tsm package (docs/formats/tsm.md); every problem is ValueError("tsm: ...")."""

import gc
import struct

from micropython import const

try:
    from binascii import crc32
except ImportError:  # pragma: no cover - every supported port has binascii.crc32
    crc32 = None

# The .tsm layout (docs/formats/tsm.md), defined here once: host/tinysense/formats/tsm.py
# reads these lines (the converter packs with the same struct formats).
MAGIC = b"TSMP"
VERSION = const(3)
_HEADER = "<4sBBHIIHHBBHIIIIIIII"   # the header's fields; 8 reserved bytes follow
HEADER_SIZE = const(64)
_TAIL = const(56)                   # the reserved bytes [56, 64)
# the CRC covers the whole file but its own 4 bytes: [0, 8) then [12, total_size)
_CRC_AT = const(8)
_CRC_END = const(12)
_MAX_BUFFER = const(16777216)       # arena bytes above any node's heap: refused
_TENSOR = "<BBBB4IIIif"
_TENSOR_SIZE = const(36)
_OPHEAD = const("<BBBBHHII")        # op record head; tensor indices and parameters follow
_OPHEAD_SIZE = const(16)
# header fields read by offset before the package is parsed (agent, model.open_streaming)
H_N_OPS = const(18)
H_ARENA_SIZE = const(24)
H_SCRATCH_SIZE = const(28)
H_CONST_OFF = const(44)
# the dtype codes the node reads (state tensors' reset value; the rest: convert/writer.py)
DT_INT8 = const(1)
DT_INT16 = const(4)
# tensor record flags the node reads (the host-only ones: docs/formats/tsm.md)
F_CONST = const(1)
F_INPUT = const(2)
F_OUTPUT = const(4)
F_STATE = const(32)   # kept across inferences (SVDF state): planned alone, reset at load


class Package:
    """The parsed tables of a package; `buf` stays the backing store for constants.

    Streaming: `buf` holds only the first const_off bytes and `file` is the open package;
    the sizes and the CRC are then checked by reading the file through a small buffer.
    check=False skips the CRC (a caller that only lists the ops; the load checks it).
    Every header field is checked against the file size and the tables (each tensor inside
    the arena or the constants, each op record inside the op table, each index in range)
    before the caller allocates anything from them.
    """

    def __init__(self, buf, file=None, check=True):
        self.buf = buf   # every attribute before the CRC pass: its garbage must not push
        n = len(buf)     # this object's dict into the middle of the heap (see _crc_file)
        if file is not None:
            file.seek(0, 2)
            n = file.tell()
        if n < HEADER_SIZE or len(buf) < HEADER_SIZE:
            raise ValueError("tsm: file too short for a header (%d bytes)" % n)
        h = struct.unpack_from(_HEADER, buf, 0)
        if h[0] != MAGIC:
            raise ValueError("tsm: bad magic %r (not a .tsm package)" % (bytes(h[0]),))
        if h[1] != VERSION:
            raise ValueError("tsm: version %d not supported (engine reads %d); reconvert "
                             "the model with this tinysense" % (h[1], VERSION))
        if h[2] != HEADER_SIZE:
            raise ValueError("tsm: bad header size %d" % h[2])
        (self.crc, self.total, self.n_tensors, self.n_ops, self.n_inputs, self.n_outputs,
         _r, self.arena_size, self.scratch_size, self.tensors_off, self.ops_off, self.ops_size,
         self.const_off, self.const_size, self.io_off) = h[4:]
        if self.total != n:
            raise ValueError("tsm: truncated or padded: header says %d bytes, file has %d"
                             % (self.total, n))
        if h[3] or _r or bytes(buf[_TAIL:HEADER_SIZE]) != bytes(HEADER_SIZE - _TAIL):
            raise ValueError("tsm: reserved header fields are not zero")
        k = self.n_inputs + self.n_outputs
        end_t = self.tensors_off + self.n_tensors * _TENSOR_SIZE
        if (self.tensors_off != HEADER_SIZE or end_t != self.ops_off
                or self.ops_off + self.ops_size != self.io_off
                or self.io_off + 4 * ((k + 1) // 2) != self.const_off
                or self.const_off + self.const_size != n or self.ops_size & 3):
            raise ValueError("tsm: inconsistent section offsets")
        if (not self.n_tensors or not self.n_inputs or not self.n_outputs
                or k > self.n_tensors or self.ops_size < self.n_ops * _OPHEAD_SIZE):
            raise ValueError("tsm: bad counts (%d tensors, %d ops, %d inputs, %d outputs)"
                             % (self.n_tensors, self.n_ops, self.n_inputs, self.n_outputs))
        if len(buf) < self.const_off:
            raise ValueError("tsm: truncated tables")
        if check and crc32 is not None:
            mv = memoryview(buf)
            crc = crc32(mv[_CRC_END:HEADER_SIZE], crc32(mv[:_CRC_AT]))
            if file is None:
                crc = crc32(mv[HEADER_SIZE:], crc)
            else:
                crc = _crc_file(file, crc32(mv[HEADER_SIZE:self.const_off], crc),
                                self.const_off)
            mv = None
            if crc & 0xFFFFFFFF != self.crc:
                raise ValueError("tsm: CRC mismatch (corrupt package); copy it again")
        self._check_tables()

    def _check_tables(self):
        """Every tensor inside the arena or the constants, the arena exactly as large as its
        tensors need, the scratch bounded, every op record and its indices in range."""
        top = 0
        for i in range(self.n_tensors):
            dtype, shape, flags, off, nbytes, _zp = self.tensor(i)
            if not 1 <= dtype <= 5 or len(shape) > 4 or flags & ~63:
                raise ValueError("tsm: tensor %d record is malformed" % i)
            if flags & F_STATE and (flags & (F_CONST | F_INPUT | F_OUTPUT)
                                    or dtype not in (DT_INT8, DT_INT16)):
                raise ValueError("tsm: state tensor %d must be an int8 or int16 arena "
                                 "tensor, not an input, output or constant" % i)
            if flags & F_CONST:
                if off + nbytes > self.const_size:
                    raise ValueError("tsm: tensor %d lies outside the constants" % i)
            elif off + nbytes > top:
                top = off + nbytes
        if self.arena_size != (top + 3) & ~3 or self.arena_size > _MAX_BUFFER:
            raise ValueError("tsm: arena_size %d does not match its tensors (%d bytes)"
                             % (self.arena_size, top))
        if self.scratch_size & 3 or self.scratch_size > _MAX_BUFFER:
            raise ValueError("tsm: scratch_size %d out of range" % self.scratch_size)
        ins, outs = self.io()
        for i in ins + outs:
            if i >= self.n_tensors or self.tensor(i)[2] & F_CONST:
                raise ValueError("tsm: io table names tensor %d, not an arena tensor" % i)
        for op in self.ops():
            for i in op[2] + op[3]:
                if i >= self.n_tensors and i != 0xFFFF:
                    raise ValueError("tsm: op %d names tensor %d (package has %d)"
                                     % (op[1], i, self.n_tensors))

    def tensor(self, i):
        """(dtype, shape, flags, offset, nbytes, zero_point) of tensor i."""
        if not 0 <= i < self.n_tensors:
            raise ValueError("tsm: no tensor %d (package has %d)" % (i, self.n_tensors))
        t = struct.unpack_from(_TENSOR, self.buf, self.tensors_off + i * _TENSOR_SIZE)
        return t[0], t[4:4 + t[1]], t[2], t[8], t[9], t[10]

    def io(self):
        """(input tensor indices, output tensor indices)."""
        k = self.n_inputs + self.n_outputs
        idx = struct.unpack_from("<%dH" % k, self.buf, self.io_off)
        return idx[:self.n_inputs], idx[self.n_inputs:]

    def ops(self, consts=False):
        """Yield (opcode, tflite index, inputs, outputs, params tuple) per op record, plus
        (const_start, const_len) of its constant data when `consts`."""
        off = self.ops_off
        end = self.ops_off + self.ops_size
        buf = self.buf
        for _ in range(self.n_ops):
            if off + _OPHEAD_SIZE > end:
                raise ValueError("tsm: op table truncated")
            code, n_in, n_out, _r, n_par, src, c_start, c_len = struct.unpack_from(
                _OPHEAD, buf, off)
            off += _OPHEAD_SIZE
            k = n_in + n_out
            if _r or off + 4 * ((k + 1) // 2) + 4 * n_par > end:
                raise ValueError("tsm: op record %d overruns the op table" % src)
            idx = struct.unpack_from("<%dH" % k, buf, off)
            off += 4 * ((k + 1) // 2)
            params = struct.unpack_from("<%di" % n_par, buf, off)
            off += 4 * n_par
            if c_len and (c_start < self.const_off or c_start + c_len > self.total
                          or c_start & 3):
                raise ValueError("tsm: op %d constants outside the constant section" % src)
            if consts:
                yield code, src, idx[:n_in], idx[n_in:], params, c_start, c_len
            else:
                yield code, src, idx[:n_in], idx[n_in:], params
        if off != end:
            raise ValueError("tsm: op table size mismatch")


def read_tables(file):
    """The first const_off bytes of an open package (what Package needs to stream it), with
    const_off checked against the file size before anything is allocated."""
    head = bytearray(HEADER_SIZE)
    file.seek(0, 2)
    n = file.tell()
    file.seek(0)
    if file.readinto(head) != HEADER_SIZE or head[:4] != MAGIC:
        raise ValueError("tsm: bad magic or header (not a .tsm package)")
    const_off = struct.unpack_from("<I", head, H_CONST_OFF)[0]
    if not HEADER_SIZE <= const_off <= n:
        raise ValueError("tsm: inconsistent section offsets")
    buf = bytearray(const_off)
    file.seek(0)
    file.readinto(buf)
    return buf


def _crc_file(file, crc, start):
    """CRC-32 of the file from `start` on, read through one 512-byte buffer. The garbage it
    leaves (CRC values are big ints on 32-bit ports) is collected before returning: long-lived
    objects allocated after it would otherwise land past it, in the middle of the heap, and
    split the free memory the arena and the streaming buffer need in one piece."""
    chunk = bytearray(512)
    whole = memoryview(chunk)
    file.seek(start)
    while True:
        k = file.readinto(chunk)
        if not k:
            break
        crc = crc32(whole if k == 512 else whole[:k], crc)
    chunk = whole = None
    gc.collect()
    return crc
