"""Decode uplink frames printed on a node's serial transport ("TSF1 <base64 frame>") for humans.

With the device's key (from the gateway registry) a frame is authenticated and its payload
summarised, records by name and classes by the device's model labels (registry `models`,
tinysense.uplink.labels); without a key only the header is shown. Key material is never put
in the text.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable

from tinysense.formats.app import SERIAL_FRAME_PREFIX
from tinysense.formats.frame import PTYPE_ACK, PTYPE_RECORDS, FrameError, open_frame, parse_header
from tinysense.formats.payload import PayloadError, decode_ack, decode_batch
from tinysense.uplink.labels import record_text

LabelsFor = Callable[[int, "int | None"], "tuple[str, ...] | None"]

PREFIX = SERIAL_FRAME_PREFIX   # "TSF1 ", the node's serial transport's (formats.app)
_MAX_SHOWN = 6     # records summarised per frame line


class FrameDescriber:
    """Turns one serial line into a frame summary (None if the line is not a frame).

    Args:
        key_for: device id -> 16-byte key, or None when the registry has no key for it.
        labels_for: (device id, model id or None) -> the model's class labels, or None.
    """

    def __init__(self, key_for: Callable[[int], bytes | None] | None = None,
                 labels_for: LabelsFor | None = None) -> None:
        self.key_for = key_for or (lambda _device: None)
        self.labels_for = labels_for or (lambda _device, _model: None)

    def describe(self, line: str) -> str | None:
        text = line.strip()
        if not text.startswith(PREFIX):
            return None
        try:
            frame = base64.b64decode(text[len(PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            return "[uplink] not a frame: bad base64"
        try:
            header = parse_header(frame)
        except FrameError as exc:
            return f"[uplink] rejected frame ({exc.reason}), {len(frame)} bytes"
        where = ("up" if header.direction == 0 else "down")
        head = (f"[uplink] device {header.device_id} (0x{header.device_id:08x}) {where} "
                f"#{header.counter}")
        key = self.key_for(header.device_id)
        if key is None:
            return (f"{head} type {header.ptype}, {len(frame)} bytes (no key for this device in "
                    "the registry: payload not shown)")
        try:
            _, plaintext = open_frame(key, frame)
        except FrameError as exc:
            return f"{head} REJECTED ({exc.reason}): not authentic with the registry's key"
        try:
            if header.ptype == PTYPE_RECORDS:
                batch = decode_batch(plaintext)
                dev = header.device_id
                parts = [record_text(r, self.labels_for(
                    dev, r.get("model") if r.get("type") in ("inference", "anomaly") else None))
                    for r in batch.records[:_MAX_SHOWN]]
                if len(batch.records) > _MAX_SHOWN:
                    parts.append(f"... {len(batch.records) - _MAX_SHOWN} more")
                dropped = f", {batch.dropped_total} dropped" if batch.dropped_total else ""
                return (f"{head} boot {batch.boot}{dropped}: {len(batch.records)} records: "
                        + " | ".join(parts))
            if header.ptype == PTYPE_ACK:
                return f"{head} ack {decode_ack(plaintext)}"
        except PayloadError as exc:
            return f"{head} authentic, but the payload does not decode: {exc}"
        return f"{head} type {header.ptype}, {len(plaintext)} bytes"


def registry_keys(db: str | os.PathLike | None) -> Callable[[int], bytes | None] | None:
    """A key lookup backed by the gateway registry (None if there is no database file).

    Keys are re-read at most once a second, so a device registered while the monitor runs
    is decoded from then on.
    """
    from tinysense.gateway import store
    from tinysense.gateway.registry import KeyCache, Registry

    path = store.DEFAULT_DB if db is None else db
    if not os.path.exists(path):
        return None
    cache = KeyCache(Registry(store.open_db(path)), refresh_s=1.0)

    def key_for(device_id: int) -> bytes | None:
        entry = cache.get(device_id)
        return entry.key if entry is not None else None

    return key_for


def registry_labels(db: str | os.PathLike | None) -> LabelsFor | None:
    """The class labels the registry records per device and model id (`tinysense devices
    model`), re-read at most once a second; None if there is no database file."""
    from tinysense.gateway import store
    from tinysense.gateway.registry import ModelLabels

    path = store.DEFAULT_DB if db is None else db
    if not os.path.exists(path):
        return None
    return ModelLabels(store.open_db(path), refresh_s=1.0).labels
