"""Bounded queue of sealed frames on the node's flash: one file per frame, counter order.

A frame file appears under its final name only by rename from a complete *.tmp file, so
killing the node at any instant leaves every queued frame whole (leftover *.tmp files are
deleted at start). Acked frames are removed. When more than `capacity` frames wait, the
oldest are dropped and `dropped_total` (persisted in <dir>/dropped, reported in every
batch header) grows. Counters of one key only increase, so name order is send order;
clear() the queue when the key is rotated.
"""

import os
import struct

from tsnode.uplink.fsutil import crc32, join, remove, write_atomic

from micropython import const

_DIR_NAME = const("uplink_q")
_DROPPED = const("dropped")


class FrameQueue:
    def __init__(self, root="/", capacity=32):
        if capacity < 1:
            raise ValueError("queue capacity must be >= 1")
        self.capacity = capacity
        self.dir = join(root, _DIR_NAME)
        try:
            os.mkdir(self.dir)
        except OSError:
            pass  # exists
        counters = []
        for name in os.listdir(self.dir):
            if name.endswith(".tmp"):
                remove(join(self.dir, name))  # an enqueue or drop-count write cut short
            elif len(name) == 8:
                try:
                    counters.append(int(name, 16))
                except ValueError:
                    pass
        counters.sort()
        self.counters = counters  # queued counters, oldest first
        self.dropped_total = self._read_dropped()

    def _path(self, counter):
        return join(self.dir, "%08x" % counter)

    def _read_dropped(self):
        try:
            with open(join(self.dir, _DROPPED), "rb") as f:
                data = f.read(9)
        except OSError:
            return 0
        if len(data) == 8 and crc32(data[:4]) & 0xFFFFFFFF == struct.unpack(">I", data[4:])[0]:
            return struct.unpack(">I", data[:4])[0]
        return 0

    def __len__(self):
        return len(self.counters)

    def put(self, counter, frame):
        """Store a sealed frame durably, then drop the oldest beyond capacity (counted)."""
        write_atomic(self._path(counter), frame)
        cs = self.counters
        if not cs or counter > cs[-1]:
            cs.append(counter)
        else:
            i = 0
            while i < len(cs) and cs[i] < counter:
                i += 1
            if i < len(cs) and cs[i] == counter:
                return
            cs.insert(i, counter)
        while len(cs) > self.capacity:
            # Count first, then remove: a cut in between over-counts by one, never hides.
            self.dropped_total = (self.dropped_total + 1) & 0xFFFFFFFF
            body = struct.pack(">I", self.dropped_total)
            write_atomic(join(self.dir, _DROPPED),
                         body + struct.pack(">I", crc32(body) & 0xFFFFFFFF))
            remove(self._path(cs.pop(0)))

    def read(self, counter):
        """The frame bytes of a queued counter, or None if it is gone."""
        try:
            with open(self._path(counter), "rb") as f:
                return f.read()
        except OSError:
            return None

    def ack(self, counter):
        """Remove an acknowledged frame; True when it was queued."""
        if counter not in self.counters:
            return False
        remove(self._path(counter))
        self.counters.remove(counter)
        return True

    def clear(self):
        for c in self.counters:
            remove(self._path(c))
        self.counters = []
