"""Test vectors for validate and bench: edge cases, seeded random inputs, and given ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysense.errors import TinysenseError


@dataclass(frozen=True)
class InputSpec:
    """One model input as the reference sees it (shape, dtype, quantization)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @classmethod
    def from_details(cls, det: dict) -> InputSpec:
        q = det.get("quantization_parameters") or {}
        scales, zps = q.get("scales", []), q.get("zero_points", [])
        return cls(tuple(int(d) for d in det["shape"]), np.dtype(det["dtype"]),
                   float(scales[0]) if len(scales) else 0.0, int(zps[0]) if len(zps) else 0)

    @property
    def is_float(self) -> bool:
        return np.issubdtype(self.dtype, np.floating)

    @property
    def code_range(self) -> tuple[int, int]:
        """The smallest and largest code: int8's for int8 and float (quantized to int8)
        inputs, int16's for an int16 input."""
        if self.is_float:
            return -128, 127
        info = np.iinfo(self.dtype)
        return int(info.min), int(info.max)


@dataclass(frozen=True)
class Vector:
    """One set of model inputs (one array per input) and where it came from."""

    label: str
    arrays: tuple[np.ndarray, ...]


def _from_int8(spec: InputSpec, q: np.ndarray) -> np.ndarray:
    """An input array for `spec` from int8 codes: the codes themselves for an int8 input; for
    a float input, the float that quantizes to each code."""
    if not spec.is_float:
        return q.astype(spec.dtype)
    return ((q.astype(np.float64) - spec.zero_point) * spec.scale).astype(spec.dtype)


def _random_float(spec: InputSpec, rng: np.random.Generator) -> np.ndarray:
    """Floats for a QUANTIZE input: exact codes, rounding ties (x.5 steps, which tflite-micro
    rounds away from zero), and values past both ends of the int8 range (saturation)."""
    q = rng.integers(-128, 128, size=spec.shape).astype(np.float64)
    offset = rng.choice([0.0, 0.5, -0.5, 0.25, -0.37], size=spec.shape)
    far = rng.random(spec.shape) < 0.05
    q = np.where(far, rng.choice([-400.0, -129.5, 127.5, 300.0], size=spec.shape), q + offset)
    return ((q - spec.zero_point) * spec.scale).astype(spec.dtype)


def _random_codes(spec: InputSpec, rng: np.random.Generator) -> np.ndarray:
    """int8: uniform over all codes. int16: uniform codes shifted right by 0..15 bits, so
    small magnitudes (what an int16 front end feeds, which a narrower next scale does not
    saturate) are as common as large ones."""
    lo, hi = spec.code_range
    q = rng.integers(lo, hi + 1, size=spec.shape)
    if hi > 127:
        q = q >> rng.integers(0, 16, size=spec.shape)
    return q.astype(spec.dtype)


def make_vectors(specs: list[InputSpec], count: int, seed: int = 0) -> list[Vector]:
    """`count` vectors: first the edge cases (all smallest code, all largest, all zero point;
    each input of the model gets the same kind), then random codes (`_random_codes`).

    For float inputs the edge cases are the floats of those codes and the random ones also
    hit rounding ties and saturation. Seeded: the same (specs, count, seed) gives the same
    vectors.
    """
    rng = np.random.default_rng(seed)
    narrow = all(s.code_range == (-128, 127) for s in specs)
    edges = [
        ("all -128" if narrow else "all min", lambda s: np.full(s.shape, s.code_range[0])),
        ("all 127" if narrow else "all max", lambda s: np.full(s.shape, s.code_range[1])),
        ("all zero point", lambda s: np.full(s.shape, s.zero_point)),
    ]
    out = []
    for label, make in edges[:count]:
        out.append(Vector(label, tuple(_from_int8(s, make(s)) for s in specs)))
    for i in range(max(count - len(edges), 0)):
        arrays = tuple(_random_float(s, rng) if s.is_float
                       else _random_codes(s, rng)
                       for s in specs)
        out.append(Vector(f"random {i + 1}", arrays))
    return out


def load_inputs(path: Path, specs: list[InputSpec]) -> list[Vector]:
    """Vectors from an .npz: one array per model input, named by input index ('0', '1'...)
    or in file order. A leading batch axis of extra vectors is allowed:
    shape (N, *input_shape) gives N vectors."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TinysenseError(f"cannot read inputs {path}: {exc}; expected an .npz file "
                             "with one array per model input") from None
    names = list(data.files)
    if len(names) != len(specs):
        raise TinysenseError(f"{path} has {len(names)} array(s) {names}, the model has "
                             f"{len(specs)} input(s); save one array per input")
    if all(n.isdigit() for n in names):
        names.sort(key=int)
    arrays = []
    for name, spec in zip(names, specs):
        arr = np.asarray(data[name])
        size = int(np.prod(spec.shape))
        if arr.size % size:
            raise TinysenseError(f"{path}:{name} has {arr.size} values, not a multiple of the "
                                 f"input's {size} (shape {spec.shape})")
        lo, hi = spec.code_range
        if not spec.is_float and np.issubdtype(arr.dtype, np.integer) and arr.size and (
                arr.min() < lo or arr.max() > hi):
            raise TinysenseError(f"{path}:{name} has values outside {spec.dtype} [{lo}, {hi}]")
        if not spec.is_float and not np.issubdtype(arr.dtype, np.integer):
            raise TinysenseError(f"{path}:{name} is {arr.dtype}, the model input is "
                                 f"{spec.dtype}; "
                                 "quantize the inputs first")
        arrays.append(arr.astype(spec.dtype).reshape((-1,) + spec.shape))
    counts = {a.shape[0] for a in arrays}
    if len(counts) != 1:
        raise TinysenseError(f"{path}: the arrays hold different numbers of vectors {counts}")
    return [Vector(f"{path.name}[{i}]", tuple(a[i] for a in arrays))
            for i in range(counts.pop())]


def adversarial_vectors(specs: list[InputSpec]) -> list[Vector]:
    """Inputs that stress saturation and rounding: alternating -128/127, zero point +-1,
    and a ramp through every int8 code (each input of the model gets the same kind)."""
    def alternating(s):
        return np.where(np.indices(s.shape).sum(axis=0) % 2 == 0, -128, 127)

    def near_zp(s):
        idx = np.arange(int(np.prod(s.shape))).reshape(s.shape)
        return np.clip(s.zero_point + (idx % 3) - 1, -128, 127)

    def ramp(s):
        idx = np.arange(int(np.prod(s.shape))).reshape(s.shape)
        return (idx * 37 % 256) - 128

    kinds = [("alternating -128/127", alternating), ("zero point +-1", near_zp),
             ("ramp over all codes", ramp)]
    return [Vector(label, tuple(_from_int8(s, make(s)) for s in specs)) for label, make in kinds]
