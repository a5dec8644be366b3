"""The app's configuration: /app.json merged over safe defaults, checked once at start.

Every key has a default, so a node with no /app.json (or an empty one) runs: the activity
model, the replay source on the virtual board or the board config's sensor on a board,
event + heartbeat uplink. docs/app.md describes each key. A bad value is a ConfigError
with one line naming the key, what it got and what it expects.
"""

import json

from micropython import const

_PATH = const("/app.json")

DEFAULTS = {
    "model": "/models/activity.tsm",  # .tsm package (a /rom/... path is read zero-copy)
    "meta": None,  # the model's meta.json on the node; None: model path with .json
    "kernels": "auto",  # auto | native | viper: the engine's kernels (auto: native if tsnn.mpy)
    "model_id": 1,  # record id of this model's results in the uplink (0..255)
    "source": "auto",  # auto | replay | mpu6050 | adc (auto: replay on virtual, else config)
    "replay": "/data/heldout.tsrc",  # recording file for the replay source
    "speed": 1,  # replay speed: 1 real time, N times faster, 0 unpaced
    "loop": True,  # replay: start over at the end (False: the app stops at the end)
    "rate_hz": 0,  # sample rate of a sensor; 0: the model's (meta.json sensor.rate_hz)
    "mode": "events",  # events | eval (demo/evaluation: one frame per window + true label)
    "heartbeat_s": 60,  # summary period in seconds (0: no summaries)
    "min_confidence": 0,  # classifier: a class change counts only with confidence >= this
    "threshold": None,  # anomaly: score threshold; None: meta.json score.threshold
    "anomaly_repeat_s": 10,  # anomaly: repeat the event this often while it lasts
    "uplink": True,  # False: decide and print only (no keys needed)
    "gateway": None,  # "HOST:PORT": overrides /uplink.json's gateway
    "transport": None,  # udp | mqtt | serial: overrides /uplink.json's transport
    "ack_wait_ms": 50,  # how long a send waits for the gateway's ack before going on
    "ota_pull_ms": 100,  # during an update: ask for the next chunks this often (0: never)
    "max_payload": 256,  # uplink buffers (bytes of payload; the app's frames are < 200)
    "wifi": {"ssid": "", "password": ""},  # WiFi station credentials (board only)
    "watchdog_s": 30,  # hardware watchdog on a board (0: off); never on the virtual board
    "sleep": "auto",  # auto | light | idle | none: how a board waits between samples
    "light_sleep_min_ms": 200,  # auto: light sleep only when samples are this far apart
    "max_windows": 0,  # stop after this many windows (0: never)
    "end_flush_s": 10,  # at a stop: keep sending queued frames this long
    "max_restarts": 3,  # loop crashes within restart_window_s before giving up (reset)
    "restart_window_s": 60,
    "print": True,  # one console line per event / summary (eval: per window)
}

_CHOICES = {
    "source": ("auto", "replay", "mpu6050", "adc"),
    "mode": ("events", "eval"),
    "sleep": ("auto", "light", "idle", "none"),
    "transport": (None, "udp", "mqtt", "serial"),
    "kernels": ("auto", "native", "viper"),
}
_NUMBERS = ("model_id", "speed", "rate_hz", "heartbeat_s", "min_confidence", "anomaly_repeat_s",
            "ack_wait_ms", "ota_pull_ms", "max_payload", "watchdog_s", "light_sleep_min_ms", "max_windows",
            "end_flush_s", "max_restarts", "restart_window_s")


class ConfigError(ValueError):
    pass


def check(cfg):
    """Raise ConfigError for the first bad key; return cfg."""
    for key in cfg:
        if key not in DEFAULTS:
            raise ConfigError("app.json: unknown key %r (known: %s)"
                              % (key, ", ".join(sorted(DEFAULTS))))
    for key, choices in _CHOICES.items():
        if cfg[key] not in choices:
            raise ConfigError("app.json: %s is %r, expected one of %s"
                              % (key, cfg[key], ", ".join(str(c) for c in choices)))
    for key in _NUMBERS:
        v = cfg[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ConfigError("app.json: %s is %r, expected a number >= 0" % (key, v))
    if cfg["model_id"] > 255 or cfg["min_confidence"] > 255:
        raise ConfigError("app.json: model_id and min_confidence are 0..255")
    t = cfg["threshold"]
    if t is not None and (not isinstance(t, int) or isinstance(t, bool)):
        raise ConfigError("app.json: threshold is %r, expected an integer score or null" % (t,))
    if not isinstance(cfg["wifi"], dict):
        raise ConfigError("app.json: wifi must be {\"ssid\": ..., \"password\": ...}")
    return cfg


def merge(overrides):
    """DEFAULTS with overrides (a dict) applied, checked."""
    cfg = dict(DEFAULTS)
    cfg["wifi"] = dict(DEFAULTS["wifi"])
    for key, value in (overrides or {}).items():
        if key == "wifi" and isinstance(value, dict):
            cfg["wifi"].update(value)
        else:
            cfg[key] = value
    cfg = check(cfg)
    if cfg["meta"] is None:
        m = cfg["model"]
        cfg["meta"] = (m[:-4] if m.endswith(".tsm") else m) + ".json"
    return cfg


def load(path=_PATH):
    """The config from `path` over the defaults; a missing file means all defaults."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return merge(None)
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        raise ConfigError("%s is not valid JSON; fix it or delete it for the defaults" % path)
    if not isinstance(doc, dict):
        raise ConfigError("%s must hold a JSON object" % path)
    return merge(doc)
