"""Home Assistant MQTT discovery configs for what the gateway publishes (docs/gateway.md).

Home Assistant's MQTT integration creates an entity for every retained JSON config on
`<prefix>/<component>/<node_id>/<object_id>/config` (prefix `homeassistant` by default;
node_id and object_id from `[a-zA-Z0-9_-]`). Here node_id is `tinysense_<device hex>`, so
one node's entities are grouped by the `device` block they share, and each entity reads the
record JSON the publisher puts on `tinysense/<device>/<name>` through a `value_template`.

Which entities a record kind makes (`entities`): the decisions get two each (the class and
its confidence; the anomaly flag as a binary_sensor and its score), a per-class reading the
dominant class with the per-class numbers as attributes, every other record kind one sensor
with its unit. Health records (heap, queue, crashes, ...) are `diagnostic` entities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tinysense import __version__
from tinysense.formats.app import KINDS

DISCOVERY_PREFIX = "homeassistant"
TOPIC_ROOT = "tinysense"          # state topics: tinysense/<device hex>/<record name>
_ID_OK = re.compile(r"^[a-zA-Z0-9_-]+$")

# record kinds shown as diagnostics (node health), not as the node's readings
_DIAGNOSTIC = {"boot", "crash", "heartbeat", "mem_free", "queued", "end", "window",
               "recording", "input_crc", "output", "truth", "change", "ota_id", "ota_at",
               "ota_step"}
# display names; a kind not listed is named after itself ("sensor_4" -> "Sensor 4")
_TITLES = {"counts": "Classes since last summary", "output": "Output codes", "boot": "Boot",
           "change": "Previous class", "heartbeat": "Windows per summary", "crash": "Crashes",
           "mem_free": "Free heap", "queued": "Queued frames", "end": "End",
           "window": "Window", "recording": "Recording", "truth": "True class",
           "input_crc": "Input CRC", "ota_id": "Update id", "ota_at": "Update bytes held",
           "ota_step": "Update step"}


@dataclass(frozen=True)
class Entity:
    component: str      # sensor, binary_sensor
    object_id: str
    config: dict        # the entity's own keys (name, value_template, units...)


def state_topic(device_id: int, name: str) -> str:
    return f"{TOPIC_ROOT}/{device_id:08x}/{name}"


def node_id(device_id: int) -> str:
    return f"tinysense_{device_id:08x}"


def entities(name: str) -> list[Entity]:
    """The Home Assistant entities fed by the record kind `name` (see the module docstring)."""
    kind = KINDS.get(name)   # None: another firmware's sensor_<id> / event_<code>
    value, unit = (kind.value, kind.unit) if kind else ("number", None)
    title = _TITLES.get(name, name.replace("_", " ").capitalize())
    if name == "inference":
        return [Entity("sensor", "inference", {"name": "Class",
                                               "value_template": "{{ value_json.label }}",
                                               "icon": "mdi:label"}),
                Entity("sensor", "inference_confidence", {
                    "name": "Confidence", "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "value_template": "{{ (value_json.probability * 100) | round(1) }}"})]
    if name == "anomaly":
        return [Entity("binary_sensor", "anomaly", {
                    "name": "Anomaly", "device_class": "problem",
                    "value_template": "{{ 'ON' if value_json.anomalous else 'OFF' }}"}),
                Entity("sensor", "anomaly_score", {"name": "Anomaly score",
                                                   "state_class": "measurement",
                                                   "value_template": "{{ value_json.score }}"})]
    config: dict = {"name": title, "value_template": "{{ value_json.state }}"}
    if value == "per_class":
        config["json_attributes_template"] = "{{ value_json.by_class | tojson }}"
    elif value == "number":
        config["state_class"] = "measurement"
        if unit:
            config["unit_of_measurement"] = unit
        if unit == "B":
            config["device_class"] = "data_size"
    if name in _DIAGNOSTIC:
        config["entity_category"] = "diagnostic"
    return [Entity("sensor", name, config)]


def device_block(device_id: int, model_name: str | None = None) -> dict:
    block = {"identifiers": [node_id(device_id)], "name": f"tinysense {device_id:08x}",
             "manufacturer": "tinysense"}
    if model_name:
        block["model"] = model_name
    return block


def discovery_messages(device_id: int, name: str, *, prefix: str = DISCOVERY_PREFIX,
                       model_name: str | None = None) -> list[tuple[str, dict]]:
    """[(config topic, config payload)] announcing record kind `name` of `device_id`
    (published retained, before the first state message of that kind)."""
    node = node_id(device_id)
    out = []
    for e in entities(name):
        if not _ID_OK.match(e.object_id):   # a generic kind with an odd id: no entity
            continue
        payload = {**e.config, "unique_id": f"{node}_{e.object_id}",
                   "state_topic": state_topic(device_id, name),
                   "device": device_block(device_id, model_name),
                   "origin": {"name": "tinysense", "sw_version": __version__}}
        if "json_attributes_template" in payload:   # the per-class numbers as attributes
            payload["json_attributes_topic"] = payload["state_topic"]
        out.append((f"{prefix}/{e.component}/{node}/{e.object_id}/config", payload))
    return out
