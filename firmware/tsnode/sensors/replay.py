"""Replay source: plays a .tsrc recording file frame by frame, paced in real or fast time.

The virtual board has no sensors, so the app samples from this instead of a driver; the
interface is the same as the drivers' (`n_channels`, `rate_hz`, `read(buf)`). Format:
docs/formats/recording.md. Each frame is read straight into the caller's array('h')
with readinto (the file's int16 little-endian is the native order on ESP32 and x86), so
reading allocates nothing.

Pacing: speed=1 delivers frames at the recording's rate (read() sleeps until the frame is
due), speed=10 ten times faster, speed=0 as fast as the caller reads. The schedule is
kept in ticks_us from the first frame, so sleep jitter does not accumulate.
"""

import struct
import time

from micropython import const

_MAGIC = const(b"TSRC")
_VERSION = const(1)
_HEADER_SIZE = const(12)
_RECORD_SIZE = const(8)
_UNLABELLED = const(255)


class ReplayError(Exception):
    pass


class ReplaySource:
    """Frames from a recording file.

    After each successful read(), `recording` is the index of the recording the frame
    belongs to, `label` its label index (see `labels`), `frame` its index inside that
    recording and `new_recording` is True for the first frame of a recording (the app
    resets its windows there).
    """

    def __init__(self, path, speed=1, loop=False):
        self._f = open(path, "rb")
        head = self._f.read(_HEADER_SIZE)
        if len(head) < _HEADER_SIZE or head[0:4] != _MAGIC:
            self.close()
            raise ReplayError("%s is not a recording file (no TSRC header)" % path)
        magic, version, n_ch, rate, n_rec, n_lab, _ = struct.unpack("<4sBBHHBB", head)
        if version != _VERSION:
            self.close()
            raise ReplayError("recording file version %d, this node reads %d"
                              % (version, _VERSION))
        self.n_channels = n_ch
        self.rate_hz = rate
        self.n_recordings = n_rec
        labels = []
        for _ in range(n_lab):
            n = self._f.read(1)
            name = self._f.read(n[0]) if n else b""
            if not n or len(name) != n[0]:
                self.close()
                raise ReplayError("recording file ends inside its label table")
            labels.append(name.decode())
        self.labels = labels
        self._data_start = self._f.tell()
        self.loop = loop
        self.set_speed(speed)
        self._rec_head = bytearray(_RECORD_SIZE)
        self.rewind()

    def set_speed(self, speed):
        """Frames are due every 1e6 / (rate_hz * speed) us; speed 0 means no pacing."""
        self.speed = speed
        self._period_us = int(1000000 / (self.rate_hz * speed)) if speed else 0
        self._due = None

    def rewind(self):
        self._f.seek(self._data_start)
        self.recording = -1
        self.label = _UNLABELLED
        self.frame = -1
        self.new_recording = False
        self._left = 0  # frames left in the current recording
        self._due = None

    def _next_record(self):
        while True:
            if self.recording + 1 >= self.n_recordings:
                if not self.loop or self.n_recordings == 0:
                    return False
                self.rewind()
            if self._f.readinto(self._rec_head) != _RECORD_SIZE:
                raise ReplayError("recording file ends inside a record header")
            h = self._rec_head
            self.recording += 1
            self.label = h[0]
            self._left = h[4] | (h[5] << 8) | (h[6] << 16) | (h[7] << 24)
            self.frame = -1
            if self._left:
                return True

    def read(self, buf):
        """Fill buf (array('h') of n_channels) with the next frame; False at the end."""
        self.new_recording = False
        if self._left == 0:
            if not self._next_record():
                return False
            self.new_recording = True
        n = self._f.readinto(buf)
        if n != 2 * self.n_channels:
            raise ReplayError("recording file ends inside a frame")
        self._left -= 1
        self.frame += 1
        if self._period_us:
            self._wait()
        return True

    def _wait(self):
        now = time.ticks_us()
        if self._due is None:
            self._due = now
            return
        self._due = time.ticks_add(self._due, self._period_us)
        delay = time.ticks_diff(self._due, now)
        if delay > 2000:
            # whole milliseconds with sleep_ms (lets the port idle or run background tasks),
            # the rest with sleep_us (a short busy wait) for sub-millisecond pacing
            time.sleep_ms(delay // 1000)
            delay = time.ticks_diff(self._due, time.ticks_us())
        if delay > 0:
            time.sleep_us(delay)
        elif delay < -1000000:
            self._due = now  # the caller stalled for over a second: do not burst to catch up

    def close(self):
        if self._f:
            self._f.close()
            self._f = None
