"""The app's uplink vocabulary and line prefixes, read from the node (firmware/tsnode/).

Record ids and event codes are the node's (`_ID_*`, `_EV_*` in firmware/tsnode/report.py,
docs/app.md); the serial transport's line prefixes are its `PREFIX` / `ACK_PREFIX`
(firmware/tsnode/uplink/serial.py, docs/formats/uplink.md). Names here drop the leading `_`.

What the node does not need lives only here: each record's name (its MQTT topic and JSON
`name`), its unit and what its value means (`KINDS`, the one source of the table in
docs/formats/app-records.md; tests/host/test_app_records.py keeps the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinysense.formats import node_consts, node_value

_REPORT = "tsnode/report.py"
_SERIAL = "tsnode/uplink/serial.py"

# {"ID_COUNTS": 200, "EV_BOOT": 1, ...}
RECORD_IDS = {k.lstrip("_"): v for k, v in node_consts(_REPORT).items()
              if k.lstrip("_").startswith(("ID_", "EV_"))}
SERIAL_FRAME_PREFIX: str = node_value(_SERIAL, "PREFIX")     # "TSF1 "
SERIAL_ACK_PREFIX: str = node_value(_SERIAL, "ACK_PREFIX")   # "TSA1 "

# What a value is: a number (`number`), a class index named by the model's labels (`class`),
# one number per class (`per_class`), a number without magnitude (`id`: a sequence number,
# an index, a checksum; not something to plot or average), or a code named by a table
# (`step`: an OTA step, tinysense.formats.ota.STEPS).
VALUE_KINDS = ("number", "class", "per_class", "id", "step")


@dataclass(frozen=True)
class Kind:
    """One record kind of the app's uplink: how the host names, labels and plots it."""

    name: str            # JSON `name` and the MQTT topic's last level: tinysense/<dev>/<name>
    type: str            # the payload record type: reading, event, inference, anomaly
    id: int | None       # sensor id (reading) or event code (event); None: the model id
    unit: str | None     # unit of the value(s), None when it has none
    value: str           # one of VALUE_KINDS
    meaning: str


# (node constant, unit, value kind, meaning); the name is the constant's without its prefix.
_TABLE = (
    ("ID_COUNTS", "windows", "per_class", "windows decided as each class since the summary"),
    ("ID_OUTPUT", "int8 code", "per_class", "the model's int8 output codes (eval mode)"),
    ("EV_BOOT", "crashes", "number", "the node started; value: crashes in a row before it"),
    ("EV_CHANGE", None, "class", "the class changed; value: the previous one (-1 at start)"),
    ("EV_HEARTBEAT", "windows", "number", "summary; value: windows since the last summary"),
    ("EV_CRASH", "crashes", "number", "crashes in the app loop this boot"),
    ("EV_MEM_FREE", "B", "number", "free GC heap at the summary"),
    ("EV_QUEUED", "frames", "number", "frames waiting in the node's queue"),
    ("EV_END", "windows", "number", "the app stopped on its own; value: windows in total"),
    ("EV_WINDOW", None, "id", "eval mode: the window's sequence number"),
    ("EV_RECORDING", None, "id", "eval mode: the replay recording's index"),
    ("EV_TRUTH", None, "class", "eval mode: the replay's true label of this window"),
    ("EV_INPUT_CRC", None, "id", "eval mode: crc32 of the window's int8 input (as int32)"),
    ("EV_OTA_ID", None, "id", "update: the id the next update events are about"),
    ("EV_OTA_AT", "B", "number", "update: bundle bytes the node holds (the next offset)"),
    ("EV_OTA_STEP", None, "step", "update: a step, named as in docs/formats/ota.md"),
)

# The model's decisions: one kind each, whatever the model id.
INFERENCE = Kind("inference", "inference", None, None, "class",
                 "classifier decision: class (labelled), confidence 0..255 = probability x 256")
ANOMALY = Kind("anomaly", "anomaly", None, None, "number",
               "anomaly decision: score (the model's reconstruction error), anomalous flag")


def _kinds() -> dict[str, Kind]:
    out = {}
    for const, unit, value, meaning in _TABLE:
        prefix, name = const.split("_", 1)
        out[name.lower()] = Kind(name.lower(), "reading" if prefix == "ID" else "event",
                                 RECORD_IDS[const], unit, value, meaning)
    for kind in (INFERENCE, ANOMALY):
        out[kind.name] = kind
    missing = set(RECORD_IDS) - {c for c, *_ in _TABLE}
    if missing:  # a new id on the node needs its row here (and in the spec)
        raise RuntimeError(f"formats/app.py: no unit or meaning for {sorted(missing)}")
    return out


KINDS: dict[str, Kind] = _kinds()                     # by name, in table order
READINGS = {k.id: k for k in KINDS.values() if k.type == "reading"}   # by sensor id
EVENTS = {k.id: k for k in KINDS.values() if k.type == "event"}       # by event code


def kind_of(rec: dict) -> Kind:
    """The Kind of a decoded record; an id the app does not define gets a generic one
    (`sensor_<id>` / `event_<code>`: another firmware's records still get a topic)."""
    t = rec.get("type")
    if t == "reading":
        sid = rec.get("sensor")
        return READINGS.get(sid) or Kind(f"sensor_{sid}", "reading", sid, None, "number", "")
    if t == "event":
        code = rec.get("code")
        return EVENTS.get(code) or Kind(f"event_{code}", "event", code, None, "number", "")
    if t == "inference":
        return INFERENCE
    if t == "anomaly":
        return ANOMALY
    return Kind(str(t), str(t), None, None, "number", "")
