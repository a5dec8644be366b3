"""Validate's vectors (edge cases, random, given .npz) and its byte comparison."""

from __future__ import annotations

import numpy as np
import pytest

from tinysense.errors import TinysenseError
from tinysense.validate.compare import compare_outputs
from tinysense.validate.vectors import (
    InputSpec, adversarial_vectors, load_inputs, make_vectors)

I8 = InputSpec((1, 4, 4, 2), np.dtype(np.int8), 0.05, -3)
F32 = InputSpec((1, 6), np.dtype(np.float32), 0.1, 5)


def test_edge_cases_come_first_then_seeded_random():
    vecs = make_vectors([I8, I8], 20, seed=3)
    assert len(vecs) == 20
    assert [v.label for v in vecs[:3]] == ["all -128", "all 127", "all zero point"]
    assert all((a == -128).all() for a in vecs[0].arrays)
    assert all((a == 127).all() for a in vecs[1].arrays)
    assert all((a == -3).all() for a in vecs[2].arrays)
    rand = np.concatenate([a.ravel() for v in vecs[3:] for a in v.arrays])
    assert rand.dtype == np.int8 and rand.min() == -128 and rand.max() == 127
    again = make_vectors([I8, I8], 20, seed=3)
    assert all(a.tobytes() == b.tobytes() for v, w in zip(vecs, again)
               for a, b in zip(v.arrays, w.arrays))
    other = make_vectors([I8, I8], 20, seed=4)
    assert vecs[5].arrays[0].tobytes() != other[5].arrays[0].tobytes()
    assert len(make_vectors([I8], 2)) == 2


def test_adversarial_vectors():
    alt, near, ramp = adversarial_vectors([I8])
    a = alt.arrays[0]
    assert set(np.unique(a)) == {-128, 127} and a[0, 0, 0, 0] != a[0, 0, 0, 1]
    assert set(np.unique(near.arrays[0])) == {-4, -3, -2}
    assert len(np.unique(ramp.arrays[0])) == 32     # 32 elements, all different codes
    (f,) = adversarial_vectors([F32])[0].arrays
    assert f.dtype == np.float32


def test_float_inputs_hit_codes_ties_and_saturation():
    vecs = make_vectors([F32], 40, seed=1)
    assert vecs[0].arrays[0].dtype == np.float32
    np.testing.assert_allclose(vecs[0].arrays[0], (-128 - 5) * 0.1, rtol=1e-6)
    codes = np.concatenate([v.arrays[0].ravel() for v in vecs[3:]]) / np.float32(0.1) + 5
    frac = np.abs(codes - np.floor(codes))
    assert np.any(np.isclose(frac, 0.5, atol=1e-3))   # rounding ties
    assert codes.max() > 127.5 and codes.min() < -128.5  # past the int8 range


def test_load_inputs_npz(tmp_path):
    p = tmp_path / "in.npz"
    np.savez(p, **{"1": np.zeros((2, 6), np.float32), "0": np.ones((2, 1, 4, 4, 2), np.int8)})
    vecs = load_inputs(p, [I8, F32])
    assert len(vecs) == 2 and vecs[0].arrays[0].shape == (1, 4, 4, 2)
    assert vecs[1].arrays[1].shape == (1, 6) and vecs[1].label == "in.npz[1]"
    np.savez(p, a=np.zeros(5, np.int8))
    with pytest.raises(TinysenseError, match="not a multiple"):
        load_inputs(p, [I8])
    np.savez(p, a=np.full(32, 300))
    with pytest.raises(TinysenseError, match="outside int8"):
        load_inputs(p, [I8])
    with pytest.raises(TinysenseError, match="1 array"):
        load_inputs(p, [I8, F32])
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(TinysenseError, match="cannot read inputs"):
        load_inputs(tmp_path / "bad.npz", [I8])


def test_compare_counts_every_byte():
    a = np.array([1, 2, 3, -128], np.int8)
    assert compare_outputs([a], [a.copy()]).identical
    b = a.copy()
    b[2] = 7
    b[3] = 127
    c = compare_outputs([a], [b])
    assert not c.identical and c.differing_values == 2 and c.first == (0, 2)
    assert c.max_abs_diff == 255
    z = np.array([0.0], np.float32)
    assert not compare_outputs([z], [-z]).identical          # -0.0 is a different byte
    assert not compare_outputs([a], [a.astype(np.int16)]).identical
    assert not compare_outputs([a], []).identical


def test_write_json_is_strict(tmp_path):
    import json

    from tinysense.validate.core import write_json

    out = tmp_path / "r.json"
    write_json({"max_abs_diff": float("inf"), "n": np.int64(3), "xs": [1.5, float("nan")]}, out)
    assert json.loads(out.read_text()) == {"max_abs_diff": None, "n": 3, "xs": [1.5, None]}
