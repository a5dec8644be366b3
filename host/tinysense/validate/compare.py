"""Byte-for-byte comparison of node outputs with the reference's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Comparison:
    """How one vector's outputs compare: every byte of every output."""

    identical: bool
    differing_values: int          # elements (not bytes) that differ, over all outputs
    max_abs_diff: float            # in the output's own units (int8 codes or floats)
    first: tuple[int, int] | None  # (output index, flat element index) of the first difference


def compare_outputs(node: list[np.ndarray], ref: list[np.ndarray]) -> Comparison:
    """Compare outputs as bytes; a shape, dtype or count difference is a difference."""
    if len(node) != len(ref):
        return Comparison(False, max(len(node), len(ref)), float("inf"), (0, 0))
    differing, max_diff, first = 0, 0.0, None
    for i, (a, b) in enumerate(zip(node, ref)):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.size != b.size:
            differing += max(a.size, b.size)
            max_diff = float("inf")
            first = first or (i, 0)
            continue
        fa, fb = a.reshape(-1), b.reshape(-1)
        # compare raw bytes per element, so -0.0 vs 0.0 or NaN payloads also count
        ua = fa.view(np.dtype(f"u{fa.dtype.itemsize}"))
        ub = fb.view(np.dtype(f"u{fb.dtype.itemsize}"))
        bad = np.nonzero(ua != ub)[0]
        if bad.size:
            differing += int(bad.size)
            first = first or (i, int(bad[0]))
            diff = np.abs(fa[bad].astype(np.float64) - fb[bad].astype(np.float64))
            max_diff = max(max_diff, float(np.nanmax(diff)) if np.any(~np.isnan(diff))
                           else float("inf"))
    return Comparison(differing == 0, differing, max_diff, first)
