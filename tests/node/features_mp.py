"""Node side of tests/node/test_features.py (MicroPython): features of recordings and cases.

replay(model_dir, tsrc): the node's inputs for a model's recording file, one line per
window: "<recording> <hex of the int8 input>".
cases(path): runs the JSON list of feature-function cases in `path`, prints one JSON
result per case. test_features.py imports this module on CPython too and runs the same
cases there (run_case), so both interpreters execute the very same code.
"""

import json
from array import array

from tsnode.sensors import features as F


def _hex(b):
    return "".join("%02x" % v for v in b)


def replay(model_dir, tsrc):
    from tsnode.sensors.pipeline import Pipeline
    from tsnode.sensors.replay import ReplaySource

    with open(model_dir + "/meta.json") as f:
        meta = json.load(f)
    p = Pipeline(meta["preprocessing"])
    src = ReplaySource(model_dir + "/" + tsrc, speed=0)
    buf = array("h", [0] * src.n_channels)
    while src.read(buf):
        if src.new_recording:
            p.reset()
        if p.push(buf):
            print(src.recording, _hex(p.input))
    src.close()


def run_case(c):
    op = c["op"]
    if op == "affine":
        a = F.Affine(c["offs"], c["muls"], c["zp"])
        out = bytearray(len(c["x"]))
        return list(a.quantize(c["x"], len(c["x"]) // a.n_ch, out))
    if op == "zscore":
        out = bytearray(len(c["x"]))
        return list(F.zscore_quantize(c["x"], len(c["x"]), c["inv"], c["zp"], out))
    if op == "bands":
        be = F.BandEnergies(c["edges"])
        return be.compute(c["x"], [0] * be.n_bands)
    if op == "fft":
        be = F.BandEnergies([0, 1])
        be.fft(c["x"])
        return [list(be._re), list(be._im)]
    if op == "ilog2":
        return [F.ilog2_q4(v) for v in c["x"]]
    if op == "isqrt":
        return [F.isqrt(v) for v in c["x"]]
    if op == "recon":
        return F.recon_error(bytes(c["a"]), bytes(c["b"]), len(c["a"]), c["zp_in"],
                             c["zp_out"], c["mul"], c["shift"])
    if op == "argmax":
        return list(F.argmax8(bytes(c["x"]), len(c["x"])))
    if op == "windows":
        w = F.Windower(c["n_ch"], c["size"], c["stride"])
        got = []
        out = [0] * (c["n_ch"] * c["size"])
        for frame in c["frames"]:
            if w.push(frame):
                got.append(list(w.window(out)))
        return got
    raise ValueError(op)


def cases(path):
    with open(path) as f:
        for c in json.load(f):
            print(json.dumps(run_case(c)))
