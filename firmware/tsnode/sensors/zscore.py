"""The energy model's preprocessing: a window standardized by its own mean and std, to int8.

Part of the ONE feature implementation (tsnode.sensors.features, which forwards these
names here): the node's Pipeline and the energy model's training run this very code, in
the Python subset that runs unchanged on CPython and MicroPython (ints only, no floats).
Its own module so a node running another model does not carry it in its heap.
"""


def clamp8(v):
    """Clamp an int to the int8 range."""
    if v < -128:
        return -128
    if v > 127:
        return 127
    return v


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
