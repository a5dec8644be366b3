"""Node driver: check tsnode.uplink frame/records against tests/vectors/uplink/ (argv[1])."""

import json
import sys

from tsnode.uplink import recdict, records
from tsnode.uplink.frame import Codec, FrameError

vec_dir = sys.argv[1]
with open(vec_dir + "/frames.json") as f:
    frames = json.load(f)["frames"]
for v in frames:
    key = bytes.fromhex(v["key"])
    codec = Codec(key, v["device_id"])
    pt = bytes.fromhex(v["plaintext"])
    frame = bytes(codec.seal(v["counter"], v["ptype"], pt, -1, v["direction"]))
    d, dev, ctr, ptype, opened = codec.open(frame)
    res = {"name": v["name"], "frame": frame.hex(), "opened": bytes(opened).hex(),
           "header": [d, dev, ctr, ptype]}
    if "records" in v:
        batch = records.Batch()
        n = recdict.encode_records(v["records"], v["batch"]["boot"],
                                   v["batch"]["dropped_total"], batch)
        res["encoded"] = bytes(batch.buf[:n]).hex()
        boot, dropped, recs = recdict.decode_records(pt)
        res["decoded"] = [boot, dropped, recs]
    if "acked" in v:
        res["encoded"] = recdict.encode_ack(v["acked"]).hex()
        res["decoded"] = records.decode_ack(pt)
    print(json.dumps(res))
with open(vec_dir + "/bad_frames.json") as f:
    bad = json.load(f)["bad_frames"]
for v in bad:
    codec = Codec(bytes.fromhex(v["key"]), 0)
    try:
        codec.open(bytes.fromhex(v["frame"]))
        reason = "accepted"
    except FrameError as e:
        reason = e.reason
    print(json.dumps({"name": v["name"], "reason": reason}))
with open(vec_dir + "/bad_payloads.json") as f:
    badp = json.load(f)["bad"]
for v in badp:
    data = bytes.fromhex(v["plaintext"])
    try:
        (recdict.decode_records if v["kind"] == "records" else records.decode_ack)(data)
        result = "accepted"
    except records.PayloadError:
        result = "rejected"
    print(json.dumps({"why": v["why"], "result": result}))
