"""From a model's int8 output to a decision, and when that decision is worth a frame.

Classifier: class = argmax of the int8 codes (first on ties, tsnode.sensors.features.argmax8),
confidence = code + 128 (0..255, probability = confidence / 256; the uplink's uint8).
Anomaly: score = recon_error(input, output, **meta score args) (an integer, from
tsnode.sensors.anomaly), class 1 ("anomaly") when score > threshold, else 0; confidence is
255 or 0.

Events (sent at once): the first decision after start, every change of class (a classifier
change needs confidence >= min_confidence; below it the window is counted but the state
stays), and for an anomaly model a repeat every `repeat_ms` while the anomaly lasts.
Everything else is only counted, for the next heartbeat summary. All integer arithmetic:
no floats on the node, and nothing here allocates per window.
"""

from array import array

from micropython import const

_CLASSIFIER = const(0)
_ANOMALY = const(1)


class Decider:
    def __init__(self, meta, min_confidence=0, threshold=None, repeat_ms=10000):
        self.labels = meta["labels"]
        self.n_classes = len(self.labels)
        score = meta.get("score")
        self.kind = _ANOMALY if score else _CLASSIFIER
        if score:
            a = score["args"]
            self._args = (a["n"], a["zp_in"], a["zp_out"], a["mul"], a["shift"])
            from tsnode.sensors.anomaly import recon_error  # loaded only for an anomaly model

            self._score = recon_error
            self.threshold = score["threshold"] if threshold is None else threshold
        else:
            n_out = 1
            for d in meta["output"]["shape"]:
                n_out *= d
            if n_out != self.n_classes:
                raise ValueError("model has %d outputs but %d labels" % (n_out, self.n_classes))
            self.threshold = None
        self.min_confidence = min_confidence
        self.repeat_ms = repeat_ms
        self.counts = array("H", bytes(2 * self.n_classes))  # windows per class since summary
        self.windows = 0  # since the summary
        self.windows_total = 0
        self.state = -1  # the class last reported in an event (-1: none yet)
        self.previous = -1  # the state before the last event
        self.cls = 0  # this window's decision
        self.confidence = 0
        self.score = 0
        self.max_score = 0  # since the summary (anomaly)
        self._last_event = 0

    def decide(self, inp, out):
        """Decide on one window (inp, out: int8 codes as bytes); returns the class."""
        if self.kind == _ANOMALY:
            n, zi, zo, mul, sh = self._args
            s = self._score(inp, out, n, zi, zo, mul, sh)
            self.score = s
            if s > self.max_score:
                self.max_score = s
            self.cls = 1 if s > self.threshold else 0
            self.confidence = 255 if self.cls else 0
        else:
            # features.argmax8 (first index on ties) without its result tuple: no allocation
            k = 0
            q = -129
            for i in range(self.n_classes):
                v = out[i]
                if v > 127:
                    v -= 256
                if v > q:
                    q = v
                    k = i
            self.cls = k
            self.confidence = q + 128
        c = self.counts[self.cls]
        if c < 32767:  # an int16 reading in the summary
            self.counts[self.cls] = c + 1
        self.windows += 1
        self.windows_total += 1
        return self.cls

    def event_due(self, now_ms):
        """True when this window's decision must be sent now (then it becomes the state)."""
        cls = self.cls
        due = False
        if cls != self.state:
            due = self.state < 0 or self.kind == _ANOMALY or \
                self.confidence >= self.min_confidence
        elif self.kind == _ANOMALY and cls == 1 and self.repeat_ms and \
                now_ms - self._last_event >= self.repeat_ms:
            due = True
        if due:
            self.previous = self.state
            self.state = cls
            self._last_event = now_ms
        return due

    def reset_summary(self):
        for i in range(self.n_classes):
            self.counts[i] = 0
        self.windows = 0
        self.max_score = 0
