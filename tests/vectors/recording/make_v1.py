"""Writes the recording-format golden vector v1.tsrc and its decoded content v1.json.

The bytes are laid out here field by field from docs/formats/recording.md with struct,
independently of host/tinysense/formats/recording.py, so the host encoder, the host decoder and
the node reader are all checked against the spec. Run: python tests/vectors/recording/make_v1.py
"""

import json
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENT = {
    "rate_hz": 50,
    "n_channels": 3,
    "labels": ["still", "b\u00e9b\u00e9"],  # a non-ASCII label: lengths are in UTF-8 bytes
    "recordings": [  # edge cases: int16 extremes, an unlabelled and an empty recording
        {"label": 0, "frames": [[0, 1, -1], [32767, -32768, 256], [-2, 2, 12345]]},
        {"label": 255, "frames": []},
        {"label": 1, "frames": [[7, -7, 0], [-300, 300, -32767]]},
        {"label": 255, "frames": [[1, 2, 3]]},
    ],
}


def main() -> None:
    c = CONTENT
    out = bytearray(b"TSRC")
    out += struct.pack("<BBHHBB", 1, c["n_channels"], c["rate_hz"], len(c["recordings"]),
                       len(c["labels"]), 0)
    for name in c["labels"]:
        raw = name.encode("utf-8")
        out += bytes([len(raw)]) + raw
    for rec in c["recordings"]:
        out += struct.pack("<BBHI", rec["label"], 0, 0, len(rec["frames"]))
        for frame in rec["frames"]:
            out += struct.pack("<3h", *frame)
    (HERE / "v1.tsrc").write_bytes(bytes(out))
    (HERE / "v1.json").write_text(json.dumps(c, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
