"""App record names, units and labels (docs/formats/app-records.md) against the one Python
source (`tinysense.formats.app.KINDS`) and the golden vectors in tests/vectors/app/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tinysense.formats.app import KINDS, RECORD_IDS, kind_of
from tinysense.formats.payload import decode_batch, encode_records
from tinysense.gateway.discovery import discovery_messages
from tinysense.gateway.publish import frame_messages
from tinysense.gateway.store import StoredFrame
from tinysense.uplink.labels import label_record, record_text

REPO = Path(__file__).resolve().parents[2]
SPEC = (REPO / "docs" / "formats" / "app-records.md").read_text()
VECTORS = json.loads((REPO / "tests" / "vectors" / "app" / "records.json").read_text())


def test_spec_table_is_kinds():
    section = SPEC.split("## Record kinds")[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `")]
    expected = [[f"`{k.name}`", k.type, "model id" if k.id is None else str(k.id),
                 k.unit or "-", k.value, k.meaning] for k in KINDS.values()]
    assert rows == expected
    # every id and code the node defines has a kind, under its node name
    for const, value in RECORD_IDS.items():
        kind = KINDS[const.split("_", 1)[1].lower()]
        assert (kind.id, kind.type) == (value, "reading" if const.startswith("ID_") else "event")


def test_names_are_safe_topic_levels():
    for name in KINDS:
        assert re.fullmatch(r"[a-z0-9_]+", name), name
        assert name not in ("up", "ack")    # the transport's own tinysense/<id>/up and /ack
    assert kind_of({"type": "reading", "sensor": 4}).name == "sensor_4"
    assert kind_of({"type": "event", "code": 99}).name == "event_99"


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_golden_cases(case):
    payload = bytes.fromhex(case["payload_hex"])
    batch = decode_batch(payload)
    assert encode_records(batch.records, boot=batch.boot) == payload
    dev = case["device_id"]
    labels = {(dev, int(m)): tuple(v) for m, v in case["labels"].items()}
    frame = StoredFrame(dev, case["key_version"], case["counter"], case["received_at"], 1,
                        "udp:192.0.2.1:4000", payload, None, None)
    assert [list(m) for m in frame_messages(frame, labels)] == case["messages"]
    for rec, text in zip(batch.records, case["texts"], strict=True):
        model = rec.get("model") if rec["type"] in ("inference", "anomaly") else None
        assert record_text(rec, labels.get((dev, model or 1))) == text
    for (topic, text), rec in zip(case["messages"], batch.records, strict=True):
        msg = json.loads(text)
        assert topic == f"tinysense/{dev:08x}/{msg['name']}"
        for key, value in rec.items():       # the decoded fields are all kept, unchanged
            assert msg[key] == value


def test_golden_discovery_configs():
    for name, configs in VECTORS["discovery"].items():
        got = discovery_messages(VECTORS["cases"][0]["device_id"], name, model_name="activity")
        assert [[t, {k: v for k, v in p.items() if k != "origin"}] for t, p in got] == configs
        for _, payload in got:
            assert payload["origin"]["name"] == "tinysense"


def test_labels_by_hand():
    """A few values worked out from the spec, not from the code."""
    labels = ("idle", "walk")
    inf = label_record({"type": "inference", "model": 1, "t_ms": 0, "class": 1,
                        "confidence": 192}, labels)
    assert (inf["label"], inf["state"], inf["probability"]) == ("walk", "walk", 0.75)
    counts = label_record({"type": "reading", "sensor": RECORD_IDS["ID_COUNTS"], "t_ms": 0,
                           "dtype": "i16", "values": [3, 3]}, labels)
    assert counts["by_class"] == {"idle": 3, "walk": 3} and counts["state"] == "idle"  # ties
    start = label_record({"type": "event", "code": RECORD_IDS["EV_CHANGE"], "t_ms": 0,
                          "value": -1}, labels)
    assert (start["value"], start["label"], start["state"]) == (-1, None, None)
    far = label_record({"type": "inference", "model": 1, "t_ms": 0, "class": 5,
                        "confidence": 0}, labels)
    assert far["label"] == "class 5"       # an index past the labels is not an error
    heap = label_record({"type": "event", "code": RECORD_IDS["EV_MEM_FREE"], "t_ms": 0,
                         "value": 1000})
    assert (heap["name"], heap["unit"], heap["state"]) == ("mem_free", "B", 1000)


def test_update_steps_by_name():
    """An OTA step event shows the step's name from docs/formats/ota.md."""
    from tinysense.formats.ota import STEP_CODES

    step = label_record({"type": "event", "code": RECORD_IDS["EV_OTA_STEP"], "t_ms": 0,
                         "value": STEP_CODES["rolled_back"]})
    assert (step["name"], step["label"], step["state"]) == ("ota_step", "rolled_back",
                                                          "rolled_back")
    assert "| `rolled_back` | -5 |" in (REPO / "docs" / "formats" / "ota.md").read_text()
    assert STEP_CODES["rolled_back"] == -5
