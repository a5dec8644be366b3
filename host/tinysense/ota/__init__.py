"""Over-the-air updates, host side: build an update bundle for a node (docs/formats/ota.md).

    from tinysense.ota import make_bundle
    data = make_bundle("models/activity/model.tflite", board="ESP32_GENERIC",
                       meta=Path("models/activity/meta.json").read_bytes())

The bundle carries the converted package and self-test vectors: int8 inputs (random, plus
each input's all-minimum and all-maximum) with the output bytes tflite-micro's interpreter
gives for them, so the node can prove it runs the package exactly before switching to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinysense.errors import TinysenseError
from tinysense.formats.ota import MAX_VECTORS, build_bundle

DEFAULT_VECTORS = 8


def _node_meta(meta: bytes | None) -> bytes:
    """The part of a meta.json the node app reads (as deploy --meta puts on a node)."""
    from tinysense.demo import node_meta

    if not meta:
        return b""
    try:
        slim = node_meta(json.loads(meta))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TinysenseError(f"the meta is not a model meta.json ({exc})") from None
    return json.dumps(slim, separators=(",", ":")).encode()


def _node_config(config: bytes | None) -> bytes:
    if not config:
        return b""
    try:
        doc = json.loads(config)
    except ValueError as exc:
        raise TinysenseError(f"the app config is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise TinysenseError("the app config is a JSON object")
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _int8_vectors(inputs: list[dict], count: int, seed: int) -> list[list[np.ndarray]]:
    """Per vector, one int8 array per node input: all-min and all-max of each, then random."""
    rng = np.random.default_rng(seed)
    vecs = []
    for fill in (-128, 127):
        vecs.append([np.full(io["shape"], fill, np.int8) for io in inputs])
    while len(vecs) < count:
        vecs.append([rng.integers(-128, 128, io["shape"], dtype=np.int64).astype(np.int8)
                     for io in inputs])
    return vecs[:count]


def _to_model_input(q: np.ndarray, io: dict) -> np.ndarray:
    """The model-level input whose node bytes are q (a float input is q dequantized; the
    node's QUANTIZE then gives q back, checked)."""
    from tinysense.convert.pipeline import quantize_input

    if io["model_dtype"] != "float32":   # int8 / int16 ends: the codes themselves
        return q.astype(io.get("node_dtype", "int8"))
    x = (np.float32(io["scale"]) * (q.astype(np.float32) - np.float32(io["zero_point"])))
    x = x.astype(np.float32)
    if not np.array_equal(quantize_input(x, io), q):
        raise TinysenseError(f"input {io['name']}: its quantization does not round-trip")
    return x


def _node_output(y: np.ndarray, io: dict) -> bytes:
    """The node's output bytes for the reference's model-level output y (int16 and int32
    little-endian)."""
    from tinysense.convert.pipeline import dequantize_output

    if io["model_dtype"] != "float32":
        return np.asarray(y, np.dtype(io.get("node_dtype", "int8")).newbyteorder("<")).tobytes()
    s = np.float32(io["scale"])
    q = np.clip(np.round(np.asarray(y, np.float64) / float(s)) + io["zero_point"], -128, 127)
    q = q.astype(np.int8)
    if not np.array_equal(dequantize_output(q, io), np.asarray(y, np.float32)):
        raise TinysenseError(f"output {io['name']}: the reference's float output is not a "
                             "dequantized int8 value")
    return q.tobytes()


def make_bundle(model: str | Path, board=None, *, meta: bytes | None = None,
                config: bytes | None = None, vectors: int = DEFAULT_VECTORS,
                seed: int = 0) -> bytes:
    """Convert a .tflite for `board` and bundle it with self-test vectors (module doc)."""
    from tinysense.convert.pipeline import convert_model
    from tinysense.reference.runner import Reference

    if not 2 <= vectors <= MAX_VECTORS:
        raise TinysenseError(f"--vectors {vectors}: 2..{MAX_VECTORS}")
    path = Path(model)
    if path.suffix != ".tflite":
        raise TinysenseError(f"{path}: a bundle is built from the .tflite (the self-test "
                             "vectors come from the reference interpreter)")
    result = convert_model(path, board)
    rep = result.report
    ref = Reference(path)
    pairs = []
    for qs in _int8_vectors(rep.inputs, vectors, seed):
        outs = ref.run([_to_model_input(q, io) for q, io in zip(qs, rep.inputs)])
        pairs.append((b"".join(q.tobytes() for q in qs),
                      b"".join(_node_output(y, io) for y, io in zip(outs, rep.outputs))))
    return build_bundle(result.package, pairs, _node_meta(meta), _node_config(config))
