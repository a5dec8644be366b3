"""The app's uplink vocabulary and line prefixes, read from the node (firmware/tsnode/).

Record ids and event codes are the node's (`_ID_*`, `_EV_*` in firmware/tsnode/report.py,
docs/app.md); the serial transport's line prefixes are its `PREFIX` / `ACK_PREFIX`
(firmware/tsnode/uplink/serial.py, docs/formats/uplink.md). Names here drop the leading `_`.
"""

from __future__ import annotations

from tinysense.formats import node_consts, node_value

_REPORT = "tsnode/report.py"
_SERIAL = "tsnode/uplink/serial.py"

# {"ID_COUNTS": 200, "EV_BOOT": 1, ...}
RECORD_IDS = {k.lstrip("_"): v for k, v in node_consts(_REPORT).items()
              if k.lstrip("_").startswith(("ID_", "EV_"))}
SERIAL_FRAME_PREFIX: str = node_value(_SERIAL, "PREFIX")     # "TSF1 "
SERIAL_ACK_PREFIX: str = node_value(_SERIAL, "ACK_PREFIX")   # "TSA1 "
