"""Statistics of bench timings: node/reference ratio from many short alternating rounds.

Load on a shared host only ever adds time, so each side's figure is its fastest run over
all rounds (the minimum), and the ratio is min(node) / min(reference). The spread estimates
how far a repeated run would land: the rounds are cut into GROUPS consecutive blocks, each
block gives the same ratio over its own rounds (fastest node run / fastest reference run),
and the spread is (largest - smallest block ratio) / the overall ratio. A spread above
SPREAD_LIMIT means the host was too busy for the ratio to be trusted (run again, quietly).
"""

from __future__ import annotations

import math

# Widest spread of the block ratios (max - min, relative to the overall ratio) at which a
# ratio is still reported as trustworthy.
SPREAD_LIMIT = 0.15
# Consecutive blocks of rounds compared for the spread (at least this many rounds needed).
GROUPS = 3


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (q in [0, 1]) of the values; nan when there are none."""
    vals = sorted(v for v in values if math.isfinite(v))
    if not vals:
        return math.nan
    pos = (len(vals) - 1) * min(max(q, 0.0), 1.0)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def ratio_stats(node_rounds: list[list[float]], ref_rounds: list[list[float]]) -> dict:
    """The ratio of two sides timed in alternating rounds (lists of per-run milliseconds).

    Returns node_ms and reference_ms (fastest run of each side over all rounds), their
    medians, ratio = node_ms / reference_ms, round_ratios (one per round), group_ratios
    (one per block of consecutive rounds), spread ((max - min) of group_ratios / ratio) and
    trusted (at least GROUPS rounds and spread <= SPREAD_LIMIT).
    """
    if len(node_rounds) != len(ref_rounds) or not node_rounds:
        raise ValueError("need the same number (at least one) of node and reference rounds")
    if not all(node_rounds) or not all(ref_rounds):
        raise ValueError("a round without timings")

    def ratio(nodes, refs):
        n = min(t for r in nodes for t in r)
        f = min(t for r in refs for t in r)
        return n / f if f > 0 else math.inf

    node_all = [t for r in node_rounds for t in r]
    ref_all = [t for r in ref_rounds for t in r]
    node_ms, ref_ms = min(node_all), min(ref_all)
    total = ratio(node_rounds, ref_rounds)
    n = len(node_rounds)
    groups = min(GROUPS, n)
    bounds = [round(g * n / groups) for g in range(groups + 1)]
    group_ratios = [ratio(node_rounds[a:b], ref_rounds[a:b])
                    for a, b in zip(bounds, bounds[1:])]
    finite = all(math.isfinite(g) for g in group_ratios) and 0 < total < math.inf
    spread = (max(group_ratios) - min(group_ratios)) / total if finite else math.inf
    return {
        "node_ms": node_ms, "reference_ms": ref_ms,
        "node_median_ms": quantile(node_all, 0.5), "reference_median_ms": quantile(ref_all, 0.5),
        "ratio": total,
        "round_ratios": [ratio([a], [b]) for a, b in zip(node_rounds, ref_rounds)],
        "group_ratios": group_ratios, "spread": spread,
        "trusted": n >= GROUPS and spread <= SPREAD_LIMIT,
    }


def geomean(values: list[float]) -> float:
    """Geometric mean of the positive finite values; nan when there are none."""
    vals = [v for v in values if v > 0 and math.isfinite(v)]
    if not vals:
        return math.nan
    return math.exp(sum(math.log(v) for v in vals) / len(vals))
