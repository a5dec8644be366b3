"""What the app puts in its uplink frames: record ids and event codes (docs/app.md).

Frames (each one uplink records batch, docs/formats/uplink.md):
  boot     event BOOT (value: crashes in a row before this start)
  event    the decision (inference, or anomaly with its score) + event CHANGE (value: the
           previous class, -1 at start), sent at once
  summary  every heartbeat: event HEARTBEAT (windows since the last one), reading COUNTS
           (windows per class since the last one), the current decision (anomaly: the
           largest score since the last summary), events MEM_FREE, QUEUED, CRASHES
  window   eval mode only, one per window: the decision, reading OUTPUT (the int8 output
           codes), events WINDOW (sequence number), RECORDING, TRUTH (the replay's label),
           INPUT_CRC (crc32 of the int8 input), and CHANGE when the class changed
  end      event END (windows in total) when the app stops on its own
"""

from array import array

from micropython import const

from tsnode.uplink.fsutil import crc32  # binascii's, or a fallback on ports without it

_ID_COUNTS = const(200)  # reading: windows per class since the last summary
_ID_OUTPUT = const(201)  # reading: the model's int8 output codes (eval mode)

_EV_BOOT = const(1)
_EV_CHANGE = const(2)
_EV_HEARTBEAT = const(3)
EV_CRASH = const(4)
_EV_MEM_FREE = const(5)
_EV_QUEUED = const(6)
_EV_END = const(7)
_EV_WINDOW = const(16)
_EV_RECORDING = const(17)
_EV_TRUTH = const(18)
_EV_INPUT_CRC = const(19)
EV_OTA_ID = const(24)  # update id the OTA events after it are about (docs/formats/ota.md)
EV_OTA_AT = const(25)  # bundle bytes the node holds: the next offset it wants
EV_OTA_STEP = const(26)  # a step code (tsnode.ota STEP_*)


def _i32(u):
    """uint32 -> the int32 with the same bits (event values are int32)."""
    u &= 0xFFFFFFFF
    return u - 0x100000000 if u & 0x80000000 else u


class Reporter:
    """Fills and sends frames through an Uplink (or only counts them when uplink is None)."""

    def __init__(self, uplink, decider, model_id=1, ack_wait_ms=50, n_out=0):
        self.up = uplink
        self.d = decider
        self.model_id = model_id
        self.ack_wait_ms = ack_wait_ms
        self.frames = 0  # frames sealed (or that would have been, without an uplink)
        self.last_counter = -1
        self._out = array("h", bytes(2 * n_out)) if n_out else None
        self.crashes = 0  # set by the app

    def _begin(self, t):
        return self.up.new_batch(t) if self.up is not None else None

    def _send(self):
        self.frames += 1
        if self.up is not None:
            self.last_counter = self.up.send_batch(flush=True, timeout_ms=self.ack_wait_ms)

    def _decision(self, b, t, summary=False):
        d = self.d
        if d.kind:  # anomaly
            score = d.max_score if summary else d.score
            b.anomaly(self.model_id, t, score, score > d.threshold)
        else:
            b.inference(self.model_id, t, d.cls, d.confidence)

    def boot(self, t, crashes_in_a_row, ota_result=None):
        """ota_result: (update id, step) of the last update (tsnode.ota state), or None."""
        b = self._begin(t)
        if b is not None:
            b.event(_EV_BOOT, t, crashes_in_a_row)
            if ota_result:
                b.event(EV_OTA_ID, t, _i32(ota_result[0]))
                b.event(EV_OTA_STEP, t, ota_result[1])
        self._send()

    def event(self, t):
        b = self._begin(t)
        if b is not None:
            self._decision(b, t)
            b.event(_EV_CHANGE, t, self.d.previous)
        self._send()

    def summary(self, t, mem_free):
        d = self.d
        b = self._begin(t)
        if b is not None:
            b.event(_EV_HEARTBEAT, t, d.windows)
            b.reading(_ID_COUNTS, t, d.counts, "i16")
            if d.windows:
                self._decision(b, t, summary=True)
            b.event(_EV_MEM_FREE, t, mem_free)
            b.event(_EV_QUEUED, t, len(self.up.queue))
            if self.crashes:
                b.event(EV_CRASH, t, self.crashes)
        self._send()
        d.reset_summary()

    def window(self, t, seq, recording, truth, inp, out, changed):
        """Eval mode: one frame for this window (truth: the replay's label index)."""
        b = self._begin(t)
        if b is not None:
            self._decision(b, t)
            o = self._out
            for i in range(len(o)):
                v = out[i]
                o[i] = v - 256 if v > 127 else v
            b.reading(_ID_OUTPUT, t, o, "i16")
            b.event(_EV_WINDOW, t, seq)
            b.event(_EV_RECORDING, t, recording)
            b.event(_EV_TRUTH, t, truth)
            b.event(_EV_INPUT_CRC, t, _i32(crc32(inp)))
            if changed:
                b.event(_EV_CHANGE, t, self.d.previous)
        self._send()

    def end(self, t, windows_total):
        b = self._begin(t)
        if b is not None:
            b.event(_EV_END, t, windows_total)
        self._send()
