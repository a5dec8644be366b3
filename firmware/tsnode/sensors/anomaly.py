"""The anomaly model's integer features and score: FFT band energies, log2, recon error.

Part of the ONE feature implementation (tsnode.sensors.features, which forwards these
names here): the node's Pipeline and Decider and the anomaly model's training run this very
code, in the Python subset that runs unchanged on CPython and MicroPython (ints only, no
floats). Its own module so a node running another model does not carry the FFT in its heap.
"""

from array import array

try:
    from micropython import const
except ImportError:  # CPython (training, host tests)
    def const(x):
        return x

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
