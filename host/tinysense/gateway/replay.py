"""Replay protection: each (device, key version, counter) is accepted at most once.

Two layers, so memory per device stays bounded while late frames that fill gaps are still
accepted exactly once:

1. In memory, per (device, key_version), a sliding window: the highest counter accepted
   (`top`) and a bitmap of the `window` counters at and below it (default 1024 bits =
   128 bytes per device). A counter above `top` slides the window; one inside it is new
   exactly when its bit is clear. This is the fast path for every in-order or slightly
   reordered frame and needs no database read.
2. Below the window, the database's primary key is the authority: the frame is new exactly
   when no row (device, key_version, counter) exists (one indexed lookup; rare, since only
   frames more than `window` counters late get here, e.g. a node's queue after an outage).
   `max_age` (counters below `top`, default unlimited) optionally rejects anything older
   as `too_old`, for deployments that prune old frames from the database.

Only authenticated frames reach this check (the gateway verifies the tag first), so a
forger cannot move a window. Windows are rebuilt lazily from the database (the stored
counters within `window` of the highest one), so after a restart a replay is still caught.
Windows are marked when a frame is accepted into the current batch; if the batch's commit
fails, every window is dropped and rebuilt from what the database really holds.
"""

from __future__ import annotations

from tinysense.gateway.store import Store

NEW = "new"
REPLAY = "replay"
TOO_OLD = "too_old"

DEFAULT_WINDOW = 1024


class Window:
    """Highest accepted counter plus a bitmap: bit i set = counter (top - i) accepted."""

    __slots__ = ("top", "bits", "size", "mask")

    def __init__(self, size: int = DEFAULT_WINDOW):
        self.top = -1
        self.bits = 0
        self.size = size
        self.mask = (1 << size) - 1

    def check(self, counter: int) -> str | None:
        """NEW, REPLAY, or None when the counter is below the window (ask the database)."""
        if counter > self.top:
            return NEW
        age = self.top - counter
        if age >= self.size:
            return None
        return REPLAY if (self.bits >> age) & 1 else NEW

    def mark(self, counter: int) -> None:
        """Record an accepted counter (must have checked NEW, or be below the window)."""
        if counter > self.top:
            shift = counter - self.top
            self.bits = ((self.bits << shift) | 1) & self.mask if shift < self.size else 1
            self.top = counter
        else:
            age = self.top - counter
            if age < self.size:
                self.bits |= 1 << age


class ReplayGuard:
    """Per-device windows backed by the store; see the module docstring."""

    def __init__(self, store: Store, window: int = DEFAULT_WINDOW, max_age: int | None = None):
        if window < 1:
            raise ValueError("replay window must be at least 1 counter")
        self.store = store
        self.window = window
        self.max_age = max_age
        self._windows: dict[tuple[int, int], Window] = {}
        self._pending: set[tuple[int, int, int]] = set()  # below-window accepts, uncommitted

    def _load(self, device_id: int, key_version: int) -> Window:
        win = Window(self.window)
        top, counters = self.store.recent_counters(device_id, key_version, self.window)
        if top is not None:
            win.top = top
            bits = 0
            for c in counters:
                bits |= 1 << (top - c)
            win.bits = bits & win.mask
        self._windows[(device_id, key_version)] = win
        return win

    def check(self, device_id: int, key_version: int, counter: int) -> str:
        """NEW, REPLAY or TOO_OLD for an authenticated frame (nothing is recorded)."""
        win = self._windows.get((device_id, key_version))
        if win is None:
            win = self._load(device_id, key_version)
        top = win.top
        if counter > top:  # the in-order fast path (never too old: it is above top)
            return NEW
        if self.max_age is not None and top - counter > self.max_age:
            return TOO_OLD
        verdict = win.check(counter)
        if verdict is None:
            full = (device_id, key_version, counter)
            if full in self._pending or self.store.has_frame(*full):
                return REPLAY
            return NEW
        return verdict

    def mark(self, device_id: int, key_version: int, counter: int) -> None:
        """Record a NEW counter as accepted into the current batch (after `check`)."""
        win = self._windows[(device_id, key_version)]
        if win.top - counter >= win.size:
            self._pending.add((device_id, key_version, counter))
        else:
            win.mark(counter)

    def check_and_mark(self, device_id: int, key_version: int, counter: int) -> str:
        """`check`, then `mark` when NEW."""
        verdict = self.check(device_id, key_version, counter)
        if verdict == NEW:
            self.mark(device_id, key_version, counter)
        return verdict

    def committed(self) -> None:
        """The batch is durable: below-window accepts are now in the database."""
        self._pending.clear()

    def reset(self) -> None:
        """Forget every window (after a failed commit): rebuilt from the database."""
        self._windows.clear()
        self._pending.clear()

    def state(self, device_id: int, key_version: int) -> tuple[int, int] | None:
        """(top, bitmap) of a loaded window, for tests and diagnostics."""
        win = self._windows.get((device_id, key_version))
        return None if win is None else (win.top, win.bits)
