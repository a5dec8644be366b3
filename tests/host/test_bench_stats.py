"""The bench statistics (stats.py) on synthetic timings: only our arithmetic, no real clock."""

from __future__ import annotations

import math

import pytest

from tinysense.bench.stats import GROUPS, SPREAD_LIMIT, geomean, quantile, ratio_stats


def test_quantile_interpolates_and_ignores_non_finite():
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.25) == pytest.approx(1.75)
    assert quantile([1.0, math.nan, 5.0], 1.0) == 5.0
    assert math.isnan(quantile([], 0.5))


def test_fastest_runs_count_so_a_burst_of_load_does_not():
    # node 1 ms, reference 2 ms; round 2's node runs and round 4's reference runs were slowed
    node = [[1.0, 1.1, 1.05], [3.0, 2.5, 2.8], [1.02, 1.0, 1.1], [1.0, 1.01, 1.2],
            [1.03, 1.0, 1.0], [1.0, 1.1, 1.1]]
    ref = [[2.0, 2.1, 2.2], [2.0, 2.05, 2.3], [2.02, 2.0, 2.4], [6.0, 5.0, 7.0],
           [2.0, 2.01, 2.1], [2.0, 2.2, 2.1]]
    st = ratio_stats(node, ref)
    assert st["node_ms"] == 1.0 and st["reference_ms"] == 2.0
    assert st["ratio"] == pytest.approx(0.5)
    assert st["round_ratios"][1] == pytest.approx(1.25) and st["round_ratios"][3] == 0.2
    # blocks of two rounds each: every block still has a clean run on both sides
    assert st["group_ratios"] == pytest.approx([0.5, 0.5, 0.5])
    assert st["spread"] == pytest.approx(0.0) and st["trusted"]
    assert st["node_median_ms"] == pytest.approx(1.04)   # of all 18 node runs


def test_blocks_that_disagree_are_not_trusted():
    node = [[1.0], [1.0], [1.0], [1.0], [1.0], [1.0]]
    ref = [[2.0], [2.0], [1.6], [1.6], [2.0], [2.5]]   # block minima 2.0, 1.6, 2.0
    st = ratio_stats(node, ref)
    assert st["ratio"] == pytest.approx(1 / 1.6)
    assert st["group_ratios"] == pytest.approx([0.5, 1 / 1.6, 0.5])
    assert st["spread"] == pytest.approx((1 / 1.6 - 0.5) * 1.6)      # 20%
    assert st["spread"] > SPREAD_LIMIT and not st["trusted"]


def test_spread_at_the_limit_is_trusted_and_just_above_is_not():
    def rounds(ref_ms):
        return [[1.0] for _ in ref_ms], [[r] for r in ref_ms]
    # reference 1.0 in every block but one at 1/0.85 (within 15%); then one at 1/0.8
    st = ratio_stats(*rounds([1.0, 1.0, 1 / 0.86]))
    assert st["spread"] == pytest.approx(0.14) and st["trusted"]
    st = ratio_stats(*rounds([1.0, 1.0, 1.25]))
    assert st["spread"] == pytest.approx(0.2) and not st["trusted"]


def test_uneven_blocks_and_too_few_rounds():
    st = ratio_stats([[1.0]] * 7, [[2.0]] * 7)       # 7 rounds: blocks of 2, 3, 2
    assert len(st["group_ratios"]) == GROUPS and st["trusted"]
    st = ratio_stats([[1.0], [1.0]], [[2.0], [2.0]])
    assert st["spread"] == 0.0 and not st["trusted"]   # fewer rounds than blocks


def test_mismatched_or_empty_rounds_are_errors():
    with pytest.raises(ValueError):
        ratio_stats([[1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError):
        ratio_stats([], [])
    with pytest.raises(ValueError):
        ratio_stats([[]], [[1.0]])


def test_geomean():
    assert geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert geomean([0.25, 1.0, math.inf, 0.0]) == pytest.approx(0.5)
    assert math.isnan(geomean([]))
