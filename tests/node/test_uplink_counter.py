"""Node frame counter store (tsnode.uplink.counter) on the unix port: persist-ahead blocks,
damaged/torn slots, key binding, exhaustion."""

from __future__ import annotations

import pytest
from uplink_helpers import run_mp

pytestmark = pytest.mark.node


def test_counter_store_scenarios(tmp_path):
    out = run_mp("counter_check.py", str(tmp_path)).split()
    assert out == ["OK", "basic", "OK", "damaged", "OK", "both_corrupt", "OK", "rotate",
                   "OK", "tmp", "OK", "exhaust"]
