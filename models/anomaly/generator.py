"""Deterministic machine-vibration generator: a rotating machine, healthy or with a fault.

One recording is RECORD_FRAMES samples of a single accelerometer axis at RATE_HZ, as int16
counts. A healthy machine: shaft tone at the running speed (1x) with 2x and 3x harmonics,
a blade-pass tone (7x), broadband noise, a lightly damped structural resonance excited by
that noise, and a sensor offset. Faults (the kinds condition monitoring looks for):

- imbalance: the 1x tone grows 2.5..4 times;
- bearing: an outer-race defect: impacts at the ball-pass frequency (BPFO = 3.58x) each
  ringing a high resonance (700..900 Hz), plus BPFO and 2xBPFO tones;
- burst: 1..3 short broadband noise bursts (a loose part, a knock), 40..100 samples each.

Every machine draws its own speed, amplitudes and noise from a numpy Generator seeded per
recording, so `recording(kind, seed)` always returns the same samples.
"""

from __future__ import annotations

import numpy as np

RATE_HZ = 2048
RECORD_FRAMES = 1024  # 0.5 s: four 256-sample windows
KINDS = ("normal", "imbalance", "bearing", "burst")


def _resonance(rng: np.random.Generator, n: int, f0: float, r: float, sigma: float):
    """White noise through a two-pole resonator at f0 (pole radius r), unit-ish gain."""
    w = 2 * np.pi * f0 / RATE_HZ
    a1, a2 = 2 * r * np.cos(w), -r * r
    e = rng.normal(0, sigma, n + 200)
    y = np.zeros(n + 200)
    for i in range(2, n + 200):
        y[i] = a1 * y[i - 1] + a2 * y[i - 2] + e[i] * (1 - r)
    return y[200:]


def recording(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(samples int16 (RECORD_FRAMES,), fault mask bool (RECORD_FRAMES,)) of one machine."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    rng = np.random.default_rng([KINDS.index(kind), seed])
    n = RECORD_FRAMES
    t = np.arange(n) / RATE_HZ
    f_rot = rng.uniform(20, 35)
    a1 = rng.uniform(800, 1200)
    if kind == "imbalance":
        a1 *= rng.uniform(2.5, 4.0)
    x = a1 * np.sin(2 * np.pi * f_rot * t + rng.uniform(0, 2 * np.pi))
    for h, lo, hi in ((2, 0.2, 0.4), (3, 0.05, 0.15)):
        x += a1 / (1 if kind != "imbalance" else 3) * rng.uniform(lo, hi) * np.sin(
            2 * np.pi * h * f_rot * t + rng.uniform(0, 2 * np.pi))
    x += rng.uniform(150, 300) * np.sin(2 * np.pi * 7 * f_rot * t + rng.uniform(0, 6.3))
    x += rng.normal(0, rng.uniform(60, 100), n)
    x += _resonance(rng, n, rng.uniform(400, 500), 0.97, rng.uniform(150, 250))
    x += rng.uniform(-200, 200)
    mask = np.zeros(n, bool)
    if kind != "normal" and kind != "burst":
        mask[:] = True
    if kind == "bearing":
        bpfo = 3.58 * f_rot
        f_res = rng.uniform(700, 900)
        amp = rng.uniform(400, 800)
        ring = np.exp(-np.arange(64) / 8.0) * np.sin(2 * np.pi * f_res * np.arange(64) / RATE_HZ)
        impacts = np.zeros(n + 64)
        phase = rng.uniform(0, 1 / bpfo)
        for k in range(int((t[-1] - phase) * bpfo) + 1):
            impacts[int((phase + k / bpfo) * RATE_HZ)] = amp * rng.uniform(0.7, 1.3)
        x += np.convolve(impacts, ring)[:n]
        for h in (1, 2):
            x += rng.uniform(100, 200) / h * np.sin(2 * np.pi * h * bpfo * t + rng.uniform(0, 6.3))
    if kind == "burst":
        for _ in range(rng.integers(1, 4)):
            length = int(rng.integers(40, 101))
            start = int(rng.integers(0, n - length))
            env = np.hanning(length)
            x[start:start + length] += env * rng.normal(0, rng.uniform(600, 1200), length)
            mask[start:start + length] |= env > 0.25
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16), mask


def dataset(kinds_counts: dict[str, int], seed0: int):
    """[(kind index, samples, mask)] for count recordings of each kind, seeds seed0, +1, ..."""
    out = []
    for kind, count in kinds_counts.items():
        for i in range(count):
            x, m = recording(kind, seed0 + i)
            out.append((KINDS.index(kind), x, m))
    return out
