"""Preprocessing shared by the node and training: windows, integer scaling, int8 inputs.

This is the ONE implementation of feature extraction (with tsnode.sensors.anomaly, the
anomaly model's FFT band energies and score, and tsnode.sensors.zscore, the energy model's
standardization: both forwarded from here by name, so a node running another model never
loads them). The node app calls it on live samples; the training
scripts in models/ import this very file (by path) to make their datasets, so host and node
cannot disagree. It is therefore written in the subset of
Python that runs unchanged on CPython and MicroPython: no numpy, no floats on any path
the node runs (ESP32 MicroPython floats are 32-bit, CPython's 64-bit, so float results
could differ at rounding edges), only Python ints, whose `>>` floors on both.

Samples are ints (int16 sensor counts). Outputs are int8 codes stored as bytes
(`q & 0xFF`) in a bytearray, ready to be copied into the model's int8 input tensor.
Only `Affine.from_stats` uses floats: it runs once, on the host, at training time.
"""

from array import array

try:
    from micropython import const
except ImportError:  # CPython (training, host tests)
    def const(x):
        return x

# Q16 multipliers for the per-channel affine map (see Affine).
AFFINE_SHIFT = const(16)
_HALF = const(1 << 15)
# Products stay below 2**30 so they are small ints on a 32-bit MicroPython (no allocation).
_PRODUCT_MAX = const(1 << 29)


def to_int8(b):
    """The signed value of one int8 code stored as a byte."""
    return b - 256 if b > 127 else b


class Windower:
    """Sliding windows over a stream of multi-channel frames.

    push(frame) stores one frame (a sequence of n_ch ints); it returns True when a full
    window is ready, the first after `size` frames and then every `stride` frames.
    window(out) copies the last `size` frames, oldest first, frame-major (interleaved:
    t0c0 t0c1 ... t1c0 ...), into `out` (an array('h') or list of size*n_ch). Samples must
    fit int16. All storage is allocated here, once: pushing allocates nothing.
    """

    def __init__(self, n_ch, size, stride):
        if size <= 0 or stride <= 0 or n_ch <= 0:
            raise ValueError("window size, stride and channels must be positive")
        self.n_ch = n_ch
        self.size = size
        self.stride = stride
        self._ring = array("h", bytes(2 * n_ch * size))  # int16 samples, 2 bytes each
        self.reset()

    def reset(self):
        """Forget all frames (e.g. at a recording boundary)."""
        self._pos = 0  # next frame slot in the ring
        self._count = 0  # frames pushed since reset

    def push(self, frame):
        n_ch = self.n_ch
        base = self._pos * n_ch
        ring = self._ring
        for c in range(n_ch):
            ring[base + c] = frame[c]
        self._pos = (self._pos + 1) % self.size
        self._count += 1
        k = self._count - self.size
        return k >= 0 and k % self.stride == 0

    def window(self, out):
        n_ch = self.n_ch
        total = n_ch * self.size
        start = self._pos * n_ch  # the oldest frame sits where the next one will go
        ring = self._ring
        for i in range(total):
            j = start + i
            if j >= total:
                j -= total
            out[i] = ring[j]
        return out


class Affine:
    """Per-channel affine map of int samples to int8 codes, in integers only.

    q = clamp8(zp + ((x - off[c]) * mul[c] + 2**15) >> 16)

    which is round((x - mean_c) / (std_c * input_scale)) + zp in fixed point: `off` is the
    channel mean and `mul` = round(2**16 / (std_c * input_scale)). The constants are
    computed once on the host (from_stats) and stored in the model's meta.json.
    """

    def __init__(self, offs, muls, zp):
        self.offs = list(offs)
        self.muls = list(muls)
        self.zp = zp
        self.n_ch = len(self.offs)
        # |x - off| beyond lim saturates anyway; clamping it keeps products small ints.
        # (lim * mul >> 16 is >= 2**12 for any mul, so the clamp never changes a result)
        self._lims = [max(1, _PRODUCT_MAX // m) if m > 0 else _PRODUCT_MAX for m in self.muls]

    @classmethod
    def from_stats(cls, means, stds, input_scale, input_zp):
        """Host side, at training time: constants from float channel statistics."""
        offs = [int(round(m)) for m in means]
        muls = [max(1, int(round((1 << AFFINE_SHIFT) / (s * input_scale)))) for s in stds]
        return cls(offs, muls, int(input_zp))

    def quantize(self, src, n_frames, out, out_start=0):
        """Map n_frames interleaved frames of `src` into int8 codes (bytes) in `out`."""
        n_ch = self.n_ch
        offs = self.offs
        muls = self.muls
        lims = self._lims
        zp = self.zp
        i = 0
        o = out_start
        for _ in range(n_frames):
            for c in range(n_ch):
                d = src[i] - offs[c]
                lim = lims[c]
                if d > lim:
                    d = lim
                elif d < -lim:
                    d = -lim
                q = zp + ((d * muls[c] + _HALF) >> AFFINE_SHIFT)
                if q < -128:
                    q = -128
                elif q > 127:
                    q = 127
                out[o] = q & 0xFF
                i += 1
                o += 1
        return out

    def to_dict(self):
        return {"offsets": self.offs, "multipliers": self.muls, "zero_point": self.zp,
                "shift": AFFINE_SHIFT}


def argmax8(codes, n):
    """Index of the largest int8 code (first on ties) and that code."""
    best = -129
    k = 0
    for i in range(n):
        v = codes[i]
        if v > 127:
            v -= 256
        if v > best:
            best = v
            k = i
    return k, best


def __getattr__(name):
    """Features only some models use live in their own modules, so a node running another
    model never loads them: tsnode.sensors.anomaly (BandEnergies, ilog2_q4, recon_error, the
    FFT tables) and tsnode.sensors.zscore (zscore_quantize, isqrt, clamp8). This keeps
    `features.BandEnergies` etc. working for training and tools."""
    from tsnode.sensors import anomaly, zscore

    for m in (anomaly, zscore):
        if hasattr(m, name):
            return getattr(m, name)
    raise AttributeError(name)
