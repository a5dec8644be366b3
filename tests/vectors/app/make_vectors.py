"""Regenerate the app-record golden vectors: `python tests/vectors/app/make_vectors.py`.

Each case is an app frame's records payload (encoded by the host encoder, the same bytes the
node's Reporter writes: docs/app.md), the class labels the registry knows for the device,
and what the host makes of it: the MQTT messages `--publish` sends (topic, JSON text), the
one-line texts the monitor and `tinysense gateway` print, and the Home Assistant discovery
configs of each record kind (without `origin`, which carries the package version). The
expected parts come from the code at the time of writing and were checked by hand against
docs/formats/app-records.md; regenerate only when that spec changes. Deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinysense.formats.app import KINDS, RECORD_IDS
from tinysense.formats.payload import encode_records
from tinysense.gateway.discovery import discovery_messages
from tinysense.gateway.publish import frame_messages
from tinysense.gateway.store import StoredFrame
from tinysense.uplink.labels import record_text

HERE = Path(__file__).resolve().parent
ABOUT = ("Made by tests/vectors/app/make_vectors.py from docs/formats/app-records.md: payloads "
         "by the host encoder, messages by tinysense.gateway.publish.frame_messages, texts by "
         "tinysense.uplink.labels.record_text, configs by tinysense.gateway.discovery. Read by "
         "tests/host/test_app_records.py.")

ID = {k.split("_", 1)[1].lower(): v for k, v in RECORD_IDS.items()}
DEV = 0x7E5D0001
RECEIVED = 1796688000.25          # 2026-12-08T00:00:00.250Z
ACTIVITY = ["badminton", "running", "standing", "walking"]


def ev(name, t, value):
    return {"type": "event", "code": ID[name], "t_ms": t, "value": value}


CASES = [
    {"name": "classifier_summary", "labels": {"1": ACTIVITY}, "boot": 2, "records": [
        ev("heartbeat", 60000, 120),
        {"type": "reading", "sensor": ID["counts"], "t_ms": 60000, "dtype": "i16",
         "values": [10, 70, 0, 40]},
        {"type": "inference", "model": 1, "t_ms": 60000, "class": 1, "confidence": 230},
        ev("mem_free", 60000, 39104), ev("queued", 60000, 0), ev("crash", 60000, 1)]},
    {"name": "classifier_event_at_start", "labels": {"1": ACTIVITY}, "boot": 1, "records": [
        {"type": "inference", "model": 1, "t_ms": 1500, "class": 3, "confidence": 255},
        ev("change", 1500, -1)]},
    {"name": "eval_window", "labels": {"1": ACTIVITY}, "boot": 1, "records": [
        {"type": "inference", "model": 1, "t_ms": 9000, "class": 2, "confidence": 128},
        {"type": "reading", "sensor": ID["output"], "t_ms": 9000, "dtype": "i16",
         "values": [-128, -100, 0, -120]},
        ev("window", 9000, 17), ev("recording", 9000, 3), ev("truth", 9000, 2),
        ev("input_crc", 9000, -123456789), ev("change", 9000, 0)]},
    {"name": "anomaly_event", "labels": {}, "boot": 5, "records": [
        {"type": "anomaly", "model": 1, "t_ms": 42000, "score": 1234.0, "anomalous": True}]},
    {"name": "boot_and_end", "labels": {}, "boot": 7, "records": [
        ev("boot", 0, 2), ev("end", 120000, 480)]},
    {"name": "update_steps", "labels": {"1": ACTIVITY}, "boot": 3, "records": [
        ev("ota_id", 500, 7), ev("ota_step", 500, 1), ev("ota_at", 500, 4096),
        ev("ota_step", 501, -2), ev("ota_step", 502, 99)]},
    {"name": "no_labels_known", "labels": {}, "boot": 1, "records": [
        {"type": "inference", "model": 1, "t_ms": 5, "class": 3, "confidence": 64},
        {"type": "reading", "sensor": ID["counts"], "t_ms": 5, "dtype": "i16",
         "values": [1, 2]}]},
    {"name": "second_model_and_unknown_ids", "labels": {"1": ACTIVITY, "2": ["quiet", "loud"]},
     "boot": 1, "records": [
         {"type": "inference", "model": 2, "t_ms": 10, "class": 1, "confidence": 200},
         {"type": "reading", "sensor": 4, "t_ms": 10, "dtype": "f32", "values": [21.5]},
         {"type": "reading", "sensor": 5, "t_ms": 10, "dtype": "i16", "values": [1, -1, 3]},
         {"type": "event", "code": 99, "t_ms": 10, "value": 7}]},
]


def expected(case: dict) -> dict:
    payload = encode_records(case["records"], boot=case["boot"])
    labels = {(DEV, int(m)): tuple(v) for m, v in case["labels"].items()}
    frame = StoredFrame(DEV, 1, 41, RECEIVED, 1, "udp:192.0.2.1:4000", payload, None, None)
    texts = []
    for rec in case["records"]:
        model = rec.get("model") if rec["type"] in ("inference", "anomaly") else None
        mine = labels.get((DEV, model if model is not None else 1))
        texts.append(record_text(rec, mine))
    return {"name": case["name"], "device_id": DEV, "key_version": 1, "counter": 41,
            "received_at": RECEIVED, "labels": case["labels"], "payload_hex": payload.hex(),
            "messages": [[t, p] for t, p in frame_messages(frame, labels)], "texts": texts}


def configs() -> dict:
    out = {}
    for name in [*KINDS, "sensor_4", "event_99"]:
        msgs = discovery_messages(DEV, name, model_name="activity")
        out[name] = [[t, {k: v for k, v in p.items() if k != "origin"}] for t, p in msgs]
    return out


def main() -> None:
    data = {"about": ABOUT, "cases": [expected(c) for c in CASES], "discovery": configs()}
    (HERE / "records.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {HERE / 'records.json'}: {len(CASES)} cases, {len(data['discovery'])} kinds")


if __name__ == "__main__":
    main()
