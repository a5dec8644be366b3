"""Node driver: encode (and seal) the random batches in argv[1]; decode the host's bytes.

Float values travel as float32 bit patterns in hex so no decimal parsing is involved.
Prints one JSON line per case: node payload hex, node frame hex, node decode of the host
payload (floats again as hex bit patterns).
"""

import json
import struct
import sys

from tsnode.uplink import recdict, records
from tsnode.uplink.frame import Codec


def from_wire(rec):
    if rec["type"] == "reading" and rec["dtype"] == "f32":
        rec["values"] = [struct.unpack(">f", bytes.fromhex(v))[0] for v in rec["values"]]
    if rec["type"] == "anomaly":
        rec["score"] = struct.unpack(">f", bytes.fromhex(rec["score"]))[0]
    return rec


def to_wire(rec):
    if rec["type"] == "reading" and rec["dtype"] == "f32":
        rec["values"] = [struct.pack(">f", v).hex() for v in rec["values"]]
    if rec["type"] == "anomaly":
        rec["score"] = struct.pack(">f", rec["score"]).hex()
    return rec


with open(sys.argv[1]) as f:
    cases = json.load(f)
batch = records.Batch()
for case in cases:
    recs = [from_wire(r) for r in case["records"]]
    n = recdict.encode_records(recs, case["boot"], case["dropped"], batch)
    codec = Codec(bytes.fromhex(case["key"]), case["device"])
    frame = codec.seal(case["counter"], 1, batch.buf, n)
    boot, dropped, decoded = recdict.decode_records(bytes.fromhex(case["host_payload"]))
    print(json.dumps({"payload": bytes(batch.buf[:n]).hex(), "frame": bytes(frame).hex(),
                      "decoded": [boot, dropped, [to_wire(r) for r in decoded]]}))
