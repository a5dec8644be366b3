"""Regenerate the OTA golden vectors: `python tests/vectors/ota/make_vectors.py`.

The bundle is laid out here field by field from docs/formats/ota.md with struct (not by
tinysense.formats.ota.build_bundle, which the host test checks against it): the .tsm golden
package tests/vectors/tsm/hello_world.tsm and its first four tflite-micro vectors. The
offer, cancel and chunk payloads are spelled out the same way. Output is deterministic.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
TSM = HERE.parent / "tsm"
UPDATE_ID = 0x01020304
CHUNK = 400


def bundle() -> bytes:
    package = (TSM / "hello_world.tsm").read_bytes()
    vecs = json.loads((TSM / "hello_world.json").read_text())["vectors"][:4]
    pairs = b"".join(bytes.fromhex(v["input"]) + bytes.fromhex(v["output"]) for v in vecs)
    meta = b'{"classes":[],"name":"hello_world"}'
    config = b'{"heartbeat_s":60}'
    padded = package + bytes(-len(package) % 4)
    total = 32 + len(padded) + len(pairs) + len(meta) + len(config)
    head = b"TSU1" + struct.pack("<IIIIHHII", total, len(package), len(meta), len(config),
                                 len(vecs), 0, 1, 1)
    return head + padded + pairs + meta + config


def main() -> None:
    data = bundle()
    (HERE / "hello_world.tsu").write_bytes(data)
    sha = hashlib.sha256(data).digest()
    offer = bytes([1, 1]) + struct.pack(">II", UPDATE_ID, len(data)) + sha + \
        struct.pack(">H", CHUNK)
    cancel = bytes([1, 2]) + struct.pack(">II", UPDATE_ID, 0) + bytes(32) + bytes(2)
    chunks = [bytes([1]) + struct.pack(">II", UPDATE_ID, off) + data[off:off + CHUNK]
              for off in range(0, len(data), CHUNK)]
    doc = {
        "about": "Made by tests/vectors/ota/make_vectors.py from docs/formats/ota.md and "
                 "tests/vectors/tsm/. Read by tests/host/test_ota_format.py and "
                 "tests/node/test_ota.py.",
        "bundle": "hello_world.tsu", "bundle_sha256": sha.hex(), "bundle_length": len(data),
        "update_id": UPDATE_ID, "chunk_size": CHUNK,
        "offer": offer.hex(), "cancel": cancel.hex(), "chunks": [c.hex() for c in chunks],
    }
    (HERE / "vectors.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote a {len(data)}-byte bundle, an offer, a cancel and {len(chunks)} chunks")


if __name__ == "__main__":
    main()
