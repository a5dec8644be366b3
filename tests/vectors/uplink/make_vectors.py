"""Regenerate the uplink golden vectors: `python tests/vectors/uplink/make_vectors.py`.

CCM comes from `cryptography`'s AESCCM (OpenSSL), the header from struct; one payload is
also spelled out byte by byte below, from docs/formats/uplink.md, and checked against the
encoder. Keys here are public test keys, never device keys. Output is deterministic.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from tinysense.formats import frame as fr
from tinysense.formats import payload as pl

HERE = Path(__file__).resolve().parent
ABOUT = ("Made by tests/vectors/uplink/make_vectors.py: AES-128-CCM (M=8, L=2) by the "
         "`cryptography` package (OpenSSL), header/nonce per docs/formats/uplink.md. "
         "Test keys only. Read by tests/host/test_uplink_*.py and tests/node/test_uplink_*.py.")

KEY_A = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
KEY_B = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")

# A records payload written out by hand from the spec (not by the encoder).
HAND_RECORDS = [
    {"type": "reading", "sensor": 1, "t_ms": 100000, "dtype": "i16", "values": [1, -2, 300]},
    {"type": "reading", "sensor": 2, "t_ms": 100200, "dtype": "f32", "values": [1.5, -0.25]},
    {"type": "inference", "model": 7, "t_ms": 100300, "class": 2, "confidence": 230},
    {"type": "anomaly", "model": 8, "t_ms": 100300, "score": 0.75, "anomalous": True},
    {"type": "event", "code": 3, "t_ms": 100000, "value": -5},
]
HAND_PLAINTEXT = bytes.fromhex(
    "01" "05" "00000002" "00000003" "000186a0"      # v1, 5 records, boot 2, dropped 3, base
    "01" "01" "00" "03" "0001" "fffe" "012c"         # i16 reading, sensor 1, +0 ms
    "02" "02" "c801" "02" "3fc00000" "be800000"      # f32 reading, sensor 2, +200 ms
    "03" "07" "ac02" "02" "e6"                       # inference, model 7, +300, class 2, 230
    "04" "08" "ac02" "01" "3f400000"                 # anomaly, model 8, +300, flagged, 0.75
    "05" "03" "00" "fffffffb"                        # event 3, +0, value -5
)


def frame_vector(name, key, device_id, counter, ptype, plaintext, direction=0, extra=None):
    header = struct.pack(">BBIIB", 1, direction, device_id, counter, ptype)
    nonce = struct.pack(">BII", direction, device_id, counter) + b"TSv1"
    frame = header + AESCCM(key, tag_length=8).encrypt(nonce, plaintext, header)
    assert frame == fr.seal(key, device_id, counter, ptype, plaintext, direction)
    vec = {"name": name, "key": key.hex(), "device_id": device_id, "counter": counter,
           "direction": direction, "ptype": ptype, "nonce": nonce.hex(),
           "header": header.hex(), "plaintext": plaintext.hex(), "frame": frame.hex()}
    vec.update(extra or {})
    return vec


def records_vector(name, key, device_id, counter, records, boot, dropped):
    plaintext = pl.encode_records(records, boot=boot, dropped_total=dropped)
    return frame_vector(name, key, device_id, counter, 1, plaintext, extra={
        "batch": {"boot": boot, "dropped_total": dropped}, "records": records})


def main():
    assert pl.encode_records(HAND_RECORDS, boot=2, dropped_total=3) == HAND_PLAINTEXT
    frames = [
        records_vector("hand_all_record_types", KEY_A, 0x01020304, 5, HAND_RECORDS, 2, 3),
        records_vector("empty_batch_heartbeat", KEY_A, 1, 0, [], 0, 0),
        records_vector("max_ids_and_counter", KEY_B, 0xFFFFFFFF, 0xFFFFFFFE, [
            {"type": "event", "code": 255, "t_ms": 0xFFFFFFFF, "value": -2147483648},
            {"type": "event", "code": 0, "t_ms": 0, "value": 2147483647},
            {"type": "reading", "sensor": 255, "t_ms": 70000, "dtype": "i16",
             "values": [-32768, 32767, 0]},
        ], 0xFFFFFFFF, 0xFFFFFFFF),
        records_vector("imu_batch", KEY_B, 42, 1000, [
            {"type": "reading", "sensor": 4, "t_ms": 5000 + 20 * i, "dtype": "i16",
             "values": [i * 3 - 100, 512 - i, -4096 + 7 * i]} for i in range(40)
        ] + [{"type": "inference", "model": 1, "t_ms": 5800, "class": 0, "confidence": 255},
             {"type": "anomaly", "model": 2, "t_ms": 5800, "score": -1.125,
              "anomalous": False}], 17, 0),
        records_vector("long_f32_reading", KEY_A, 9, 77, [
            {"type": "reading", "sensor": 9, "t_ms": 123, "dtype": "f32",
             "values": [i / 8 - 10 for i in range(250)]}], 1, 0),
        frame_vector("ack_three", KEY_A, 0x01020304, 0, 2, pl.encode_ack([5, 6, 9]),
                     direction=1, extra={"acked": [5, 6, 9]}),
        frame_vector("ack_empty", KEY_B, 42, 7, 2, pl.encode_ack([]), direction=1,
                     extra={"acked": []}),
        frame_vector("ack_max", KEY_B, 42, 0xFFFFFFFF, 2,
                     pl.encode_ack(list(range(1000, 1255))), direction=1,
                     extra={"acked": list(range(1000, 1255))}),
        frame_vector("raw_max_payload", KEY_A, 3, 3, 1, bytes(range(256)) * 4,
                     extra={"note": "not a valid batch: CCM and size limits only"}),
        frame_vector("raw_odd_length", KEY_A, 3, 4, 1, b"\x01" * 17,
                     extra={"note": "not a valid batch: CCM only (partial block)"}),
    ]
    good = bytes.fromhex(frames[0]["frame"])
    key = frames[0]["key"]

    def flip(buf, i, bit=1):
        b = bytearray(buf)
        b[i] ^= bit
        return bytes(b)

    bad = [
        ("empty", b"", "truncated"),
        ("header_only", good[:11], "truncated"),
        ("one_short_of_minimum", good[:18], "truncated"),
        ("truncated_tag", good[:-1], "bad_tag"),
        ("oversized", good[:11] + bytes(1025) + bytes(8), "oversized"),
        ("bad_version", bytes([2]) + good[1:], "bad_version"),
        ("reserved_flag_bit", flip(good, 1, 0x80), "bad_flags"),
        ("bad_type_0", good[:10] + b"\x00" + good[11:], "bad_type"),
        ("bad_type_5", good[:10] + b"\x05" + good[11:], "bad_type"),
        ("direction_flipped", flip(good, 1, 1), "bad_tag"),
        ("device_id_changed", flip(good, 5), "bad_tag"),
        ("counter_changed", flip(good, 9), "bad_tag"),
        ("type_changed", good[:10] + b"\x02" + good[11:], "bad_tag"),
        ("ciphertext_bit", flip(good, 11), "bad_tag"),
        ("last_ciphertext_bit", flip(good, len(good) - 9, 0x80), "bad_tag"),
        ("tag_bit", flip(good, len(good) - 1), "bad_tag"),
        ("extra_byte", good + b"\x00", "bad_tag"),
    ]
    bad_frames = [{"name": n, "key": key, "frame": f.hex(), "reason": r} for n, f, r in bad]
    bad_frames.append({"name": "wrong_key", "key": KEY_B.hex(), "frame": good.hex(),
                       "reason": "bad_tag"})
    hp = HAND_PLAINTEXT
    H0 = "0101" + "00" * 12  # v1, one record, boot/dropped/base 0
    bad_payloads = [
        ("records", "", "short header"), ("records", hp[:13].hex(), "short header"),
        ("records", "02" + hp[1:].hex(), "version"),
        ("records", hp[:-1].hex(), "truncated"), ("records", hp.hex() + "00", "trailing"),
        ("records", hp[:1].hex() + "06" + hp[2:].hex(), "count too high"),
        ("records", hp[:1].hex() + "04" + hp[2:].hex(), "count too low (trailing)"),
        ("records", H0 + "060100", "unknown record type 6"),
        ("records", H0 + "0500" + "8000" + "00000000", "overlong varint"),
        ("records", H0 + "0500" + "8080808080" + "00000000", "varint over 5 bytes"),
        ("records", H0 + "0500" + "ffffffff1f" + "00000000", "varint above uint32"),
        ("records", "0101" + "00" * 8 + "ffffffff" + "0500" + "01" + "00000000",
         "base + delta above uint32"),
        ("records", H0 + "0400" + "00" + "02" + "00000000", "anomaly flag 2"),
        ("records", H0 + "0100" + "00" + "03" + "0001", "reading values truncated"),
        ("records", H0 + "0500", "record body missing"),
        ("ack", "", "short"), ("ack", "0200", "version"), ("ack", "0101", "missing counter"),
        ("ack", "010100000001ff", "trailing"),
        ("ack", "01020000000500000005", "not strictly ascending"),
        ("ack", "01020000000600000005", "descending"),
    ]
    payloads = {"_about": ABOUT, "bad": [
        {"kind": k, "plaintext": p, "why": w} for k, p, w in bad_payloads]}
    for entry in payloads["bad"]:  # the host decoder must reject every one
        data = bytes.fromhex(entry["plaintext"])
        try:
            (pl.decode_batch if entry["kind"] == "records" else pl.decode_ack)(data)
        except pl.PayloadError:
            continue
        raise AssertionError(f"accepted bad payload {entry}")
    for name, doc in (("frames.json", {"_about": ABOUT, "frames": frames}),
                      ("bad_frames.json", {"_about": ABOUT, "bad_frames": bad_frames}),
                      ("bad_payloads.json", payloads)):
        (HERE / name).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(frames)} frames, {len(bad_frames)} bad frames, "
          f"{len(payloads['bad'])} bad payloads")


if __name__ == "__main__":
    main()
