# main.py for the monitor test's virtual board (tests/host/test_monitor.py), provisioned for
# the serial transport: at every boot the node's own uplink code seals one records frame and
# sends it as a "TSF1 <base64>" line on stdout; then the board drops into its REPL.
from tsnode.uplink.sender import Uplink

up = Uplink()
up.send([{"type": "inference", "model": 1, "t_ms": 1000, "class": 2, "confidence": 200}])
