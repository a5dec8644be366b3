"""The app's start-up: config, files, model, uplink, pipeline, source (tsnode.app.App).

Only needed once: tsnode.app unloads this module after start, so its code does not stay in
the heap next to the running app (a stock ESP32 keeps imported code in its ~110 KB heap).
"""

import gc
import sys
from array import array

from tsnode import board


def _unload(package, name):
    """Forget a start-up-only module so its code leaves the heap."""
    sys.modules.pop(package + "." + name, None)
    try:
        delattr(sys.modules[package], name)
    except (KeyError, AttributeError):
        pass


def load_config(path):
    """/app.json over the defaults (tsnode.config, unloaded again: its table is ~5 KB)."""
    from tsnode import config

    cfg = config.load(path)
    config = None
    _unload("tsnode", "config")
    return cfg


def missing_file(cfg):
    """The first file the app needs that is not there, or None."""
    import os

    need = [cfg["model"], cfg["meta"]]
    if _source_spec(cfg["source"]).get("kind") == "replay":
        need.append(cfg["replay"])
    for path in need:
        try:
            os.stat(path)
        except OSError:
            return path
    return None


def _load_json(path):
    import json

    with open(path) as f:
        return json.load(f)


def _read_package(path):
    """A ROMFS file as a zero-copy memoryview (4-byte aligned), else the file read whole."""
    f = open(path, "rb")
    try:
        mv = memoryview(f)  # only ROMFS files have the buffer protocol
        from tsnode.engine.model import address

        if address(mv) & 3 == 0:
            return mv
    except TypeError:
        pass
    f.seek(0, 2)
    buf = bytearray(f.tell())
    f.seek(0)
    f.readinto(buf)
    f.close()
    return buf


def _source_spec(kind):
    """The sensor entry for source `kind` (auto: replay on the virtual board, else the board
    config's first [[sensors]] entry)."""
    if kind == "replay" or (kind == "auto" and board.platform in ("virtual", "qemu")):
        return {"kind": "replay"}
    sensors = board.config().get("sensors") or []
    if kind == "auto":
        return sensors[0] if sensors else {"kind": "mpu6050"}
    for s in sensors:
        if s.get("kind") == kind:
            return s
    return {"kind": kind}


def ota_boot():
    """(files, result, on trial) after tsnode.ota.boot(): the active update's (model, meta,
    app.json) or None for /app.json's model; (update id, step) of the last update or None;
    whether the active model is an update on trial. The ota module is imported only when an
    update ever reached the node (/ota/state.json)."""
    import os

    try:
        os.stat("/ota/state.json")
    except OSError:
        return None, None, False
    from tsnode import ota

    files = ota.boot("/", crashes=crashes_in_a_row())
    st = ota.read_state("/")
    ota = None
    _unload("tsnode", "ota")
    return files, st["result"], bool(st["trial"])


def crashes_in_a_row():
    """tsnode.supervise's count of crashes before this start (read here: no import)."""
    try:
        with open("/crash.state") as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def open_uplink(cfg):
    """The Uplink from /uplink.json + /uplink_key.bin with app.json's overrides, or None."""
    if not cfg["uplink"]:
        return None
    from tsnode.uplink.sender import Uplink, load_config, load_key

    try:
        ucfg = load_config("/")
        key = load_key("/")
    except (OSError, ValueError) as e:
        print("app: no uplink (%s); provision the node with `tinysense provision`" % e)
        return None
    for k in ("gateway", "transport"):
        if cfg[k]:
            ucfg[k] = cfg[k]
    if ucfg.get("transport", "udp") != "serial" and not getattr(board, "network", True):
        print("app: no network on this board; uplink over serial")
        ucfg["transport"] = "serial"
    if "max_payload" not in ucfg:
        ucfg["max_payload"] = cfg["max_payload"]
    # Import the transport's module now (the sender would at the first send): imports add
    # qstrs, and a new qstr pool is one large block, better taken at start than mid-run.
    kind = ucfg.get("transport", "udp")
    if kind in ("udp", "mqtt", "serial"):
        __import__("tsnode.uplink." + kind)
    return Uplink(ucfg, key, "/")


def setup(app, cfg, uplink=False):
    """Fill a new App: cfg a tsnode.config dict; uplink an Uplink, None (no uplink), or False
    to build it from the node's files (open_uplink)."""
    # Memory: the ESP32's ~110 KB heap holds code too, so the order matters: the largest
    # block (the package) first while the heap is empty, each import group followed by a
    # collection so its garbage does not fragment the heap under long-lived objects.
    app.cfg = cfg
    app.eval = cfg["mode"] == "eval"
    gc.collect()
    pkg = _read_package(cfg["model"])
    meta = _load_json(cfg["meta"])
    pre = meta["preprocessing"]
    rate = cfg["rate_hz"] or meta.get("sensor", {}).get("rate_hz", 1)
    # only what the decider reads stays: a whole meta.json (docs/app.md allows it) is a tree
    # of several KB that would otherwise sit in the heap while the engine's code compiles
    meta = {k: meta[k] for k in ("labels", "output", "score") if k in meta}
    gc.collect()
    from tsnode.engine.model import Model  # the largest code first, before the small objects

    gc.collect()
    from tsnode.sensors.source import open_source

    spec = _source_spec(cfg["source"])
    app.source = open_source(spec, board, cfg["replay"], cfg["speed"], cfg["loop"], rate)
    open_source = None
    _unload("tsnode.sensors", "source")  # start-up only
    app.replay = spec.get("kind") == "replay"
    from tsnode.sensors.pipeline import Pipeline

    app.pipe = Pipeline(pre)
    pre = None
    gc.collect()
    board.set_wifi(cfg["wifi"].get("ssid"), cfg["wifi"].get("password"))
    app.up = open_uplink(cfg) if uplink is False else uplink
    gc.collect()
    app.model = m = Model(pkg, None, cfg["kernels"])
    pkg = None
    print("app: %s kernels" % m.kernels)
    app.in_view = m.tensor_view(m.inputs[0])
    app.out_view = m.tensor_view(m.outputs[0])
    if len(m.inputs) != 1 or len(m.outputs) != 1 or len(app.in_view) != len(app.pipe.input):
        raise ValueError("model input is %d bytes, the preprocessing makes %d"
                         % (len(app.in_view), len(app.pipe.input)))
    gc.collect()
    from tsnode.decide import Decider
    from tsnode.report import Reporter

    app.labels = meta["labels"]
    app.decider = Decider(meta, cfg["min_confidence"], cfg["threshold"],
                          cfg["anomaly_repeat_s"] * 1000)
    meta = None
    app.pacer = None
    if not app.replay:
        from tsnode.pacer import Pacer

        app.pacer = Pacer(rate, cfg["sleep"], cfg["light_sleep_min_ms"])
    app.frame = array("h", bytes(2 * app.source.n_channels))
    app.reporter = Reporter(app.up, app.decider, cfg["model_id"], cfg["ack_wait_ms"],
                            len(app.out_view) if app.eval else 0)
    app.wdt = None
    if cfg["watchdog_s"] and board.platform not in ("virtual", "qemu"):
        app.wdt = board.watchdog(int(cfg["watchdog_s"] * 1000))
    app.boot_crashes = crashes_in_a_row()
