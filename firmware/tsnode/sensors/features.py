"""Preprocessing shared by the node and training: windows, integer scaling, int8 inputs.

This is the ONE implementation of feature extraction. The node app calls it on live
samples; the training scripts in models/ import this very file (by path) to make their
datasets, so host and node cannot disagree. It is therefore written in the subset of
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
# FFT: length, log2 length and Q14 twiddles.
FFT_N = const(256)
_FFT_LOG2 = const(8)
_TW_SHIFT = const(14)
_TW_HALF = const(1 << 13)
# log2 results carry LOG2_FRAC fractional bits (Q4: steps of 1/16 octave).
LOG2_FRAC = const(4)

# round(16384 * sin(2*pi*k/256)) for k = 0..64 (a quarter wave). Written out, not computed,
# because float32 (ESP32) and float64 (CPython) may round a computed table differently.
# tests/node/test_features.py checks it against math.sin.
_SIN_Q14 = (
    0, 402, 804, 1205, 1606, 2006, 2404, 2801, 3196, 3590, 3981, 4370, 4756, 5139,
    5520, 5897, 6270, 6639, 7005, 7366, 7723, 8076, 8423, 8765, 9102, 9434, 9760, 10080,
    10394, 10702, 11003, 11297, 11585, 11866, 12140, 12406, 12665, 12916, 13160, 13395,
    13623, 13842, 14053, 14256, 14449, 14635, 14811, 14978, 15137, 15286, 15426, 15557,
    15679, 15791, 15893, 15986, 16069, 16143, 16207, 16261, 16305, 16340, 16364, 16379,
    16384,
)


def clamp8(v):
    """Clamp an int to the int8 range."""
    if v < -128:
        return -128
    if v > 127:
        return 127
    return v


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


def isqrt(n):
    """floor(sqrt(n)) for an int n >= 0 (Newton's method on ints)."""
    if n < 2:
        return n
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x


def zscore_quantize(src, n, inv_scale_q8, zp, out, out_start=0):
    """Standardize n samples by their own mean and (population) std, then to int8 codes.

    With S = sum(x), V = n*sum(x*x) - S*S and d = n*x - S, the z-score is
    (x - mean) / std = d / sqrt(V). In integers, r = isqrt(V * 2**16) ~ 256 * sqrt(V) and
    q = clamp8(zp + round(d * inv_scale_q8 / r)), inv_scale_q8 = round(256 / input_scale)
    (rounding half up by floor division). A constant window maps to zp. Runs once per
    window, not per sample, so intermediate big ints are acceptable here.
    """
    s = 0
    ss = 0
    for i in range(n):
        x = src[i]
        s += x
        ss += x * x
    r = isqrt((n * ss - s * s) << 16)
    for i in range(n):
        if r == 0:
            q = zp
        else:
            q = zp + (2 * (n * src[i] - s) * inv_scale_q8 + r) // (2 * r)
        out[out_start + i] = clamp8(q) & 0xFF
    return out


def _twiddle(k):
    """(cos, sin) of 2*pi*k/256 in Q14, for 0 <= k < 128."""
    if k <= 64:
        return _SIN_Q14[64 - k], _SIN_Q14[k]
    return -_SIN_Q14[k - 64], _SIN_Q14[128 - k]


class BandEnergies:
    """Log2 energies of FFT bands of a 256-sample window, in integers (Q4 log2).

    Fixed-point radix-2 FFT with Q14 twiddles and a >>1 (rounded) scaling per stage, so
    values stay within 16 bits and products within about 2**30 (small ints on a 32-bit
    MicroPython, almost never a big-int allocation). Energy of bin k is
    re*re + im*im of the scaled spectrum (X[k]/256); band b sums bins
    edges[b] .. edges[b+1]-1; the result is ilog2_q4(energy + 1).
    """

    def __init__(self, edges):
        self.edges = list(edges)
        self.n_bands = len(self.edges) - 1
        if self.edges[0] < 0 or self.edges[-1] > FFT_N // 2:
            raise ValueError("band edges must lie in 0..128")
        # int32 arrays, not lists: 1 KB each on any port (a list of 256 ints is 2 KB on a
        # 64-bit unix port); |values| stay <= 2**15 + 1 thanks to the per-stage scaling
        self._re = array("i", bytes(4 * FFT_N))
        self._im = array("i", bytes(4 * FFT_N))
        rev = bytearray(FFT_N)  # bit-reversal permutation, computed once
        for i in range(FFT_N):
            r = 0
            v = i
            for _ in range(_FFT_LOG2):
                r = (r << 1) | (v & 1)
                v >>= 1
            rev[i] = r
        self._rev = rev

    def fft(self, src, start=0):
        """In-place fixed-point FFT of src[start:start+256]; results in self._re/_im."""
        re = self._re
        im = self._im
        rev = self._rev
        for i in range(FFT_N):
            re[rev[i]] = src[start + i]
            im[rev[i]] = 0
        half = 1
        step = FFT_N >> 1  # twiddle index step
        while half < FFT_N:
            for j in range(half):
                wr, wi = _twiddle(j * step)
                # X = a + w*b with w = exp(-i*theta) = wr - i*wi
                for a in range(j, FFT_N, half << 1):
                    b = a + half
                    br = re[b]
                    bi = im[b]
                    tr = (br * wr + bi * wi + _TW_HALF) >> _TW_SHIFT
                    ti = (bi * wr - br * wi + _TW_HALF) >> _TW_SHIFT
                    ar = re[a]
                    ai = im[a]
                    re[a] = (ar + tr + 1) >> 1
                    im[a] = (ai + ti + 1) >> 1
                    re[b] = (ar - tr + 1) >> 1
                    im[b] = (ai - ti + 1) >> 1
            half <<= 1
            step >>= 1

    def compute(self, src, out, start=0):
        """Band log-energies (Q4 log2 ints) of src[start:start+256] into out[0:n_bands]."""
        self.fft(src, start)
        re = self._re
        im = self._im
        edges = self.edges
        for b in range(self.n_bands):
            e = 0
            for k in range(edges[b], edges[b + 1]):
                e += re[k] * re[k] + im[k] * im[k]
            out[b] = ilog2_q4(e + 1)
        return out


def ilog2_q4(v):
    """log2(v) for an int v >= 1 in Q4 (16 * log2), mantissa linearly interpolated."""
    if v <= 1:
        return 0
    n = 0
    while (v >> n) > 1:
        n += 1
    if n >= LOG2_FRAC:
        m = (v >> (n - LOG2_FRAC)) & 15
    else:
        m = (v << (LOG2_FRAC - n)) & 15
    return (n << LOG2_FRAC) + m


def recon_error(inp, out, n, zp_in, zp_out, mul, shift):
    """Autoencoder score: sum of squared differences in the input's int8 units.

    The output codes are first mapped to the input's scale with an integer multiplier
    (mul / 2**shift = output_scale / input_scale): e = sum((x - zp_in) - o')**2 with
    o' = ((o - zp_out) * mul + 2**(shift-1)) >> shift. `inp` and `out` hold int8 codes as
    bytes. The threshold in meta.json is in these units, so the node never needs floats.
    """
    e = 0
    rnd = 1 << (shift - 1)
    for i in range(n):
        x = inp[i]
        if x > 127:
            x -= 256
        o = out[i]
        if o > 127:
            o -= 256
        d = (x - zp_in) - (((o - zp_out) * mul + rnd) >> shift)
        e += d * d
    return e


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
