"""The gateway's ingest thread: transports submit frames, one thread owns the Gateway.

Transports only move bytes: each received frame is submitted with a `reply` callable (sends
an Ack back the way the frame came) and an optional `done` callable (for MQTT: the PUBACK
to the broker). The ingest thread takes whatever has queued up (up to `max_batch` frames),
runs Gateway.handle_batch (one SQLite commit), and only then calls the replies and `done`:
nothing is acknowledged, to the node or to the broker, before it is durable. Under light
load a batch is one frame; under heavy load batches grow and the fsync is shared.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from tinysense.gateway.core import Ack, Gateway

log = logging.getLogger("tinysense.gateway")

Reply = Callable[[Ack], None]

# Frames per commit at most. Under a flood, 4096 shares each fsync (and each write of the
# per-device index pages) among more frames than 1024 did: about 25% more frames/s
# (docs/gateway.md), for at most ~50 ms more latency to ack, and only while flooded.
DEFAULT_BATCH = 4096


class IngestLoop:
    """The single thread that owns the Gateway; transports call `submit` from any thread."""

    def __init__(self, gateway: Gateway, max_batch: int = DEFAULT_BATCH):
        self.gateway = gateway
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, frame: bytes | None, source: str, reply: Reply | None = None,
               done: Callable[[], None] | None = None) -> None:
        """Queue a received frame (None = the transport could not decode its framing)."""
        self._queue.put([(frame, source, reply, done)])

    def submit_many(self, items: list[tuple]) -> None:
        """Queue several (frame, source, reply, done) at once (cheaper per frame)."""
        if items:
            self._queue.put(items)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> bool:
        """Process everything already queued, then stop; False if still busy after
        `timeout` seconds (the thread is a daemon: the process can still exit)."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("ingest still busy after %.0f s; frames not yet committed were not "
                        "acknowledged and will be re-sent", timeout)
            return False
        return True

    def _run(self) -> None:
        q = self._queue
        while True:
            try:
                item = q.get(timeout=1.0)
            except queue.Empty:
                self._flush()  # idle: write pending rejection counts
                continue
            batch: list[tuple] = []
            stopping = False
            while True:
                if item is None:
                    stopping = True
                else:
                    batch += item
                if len(batch) >= self.max_batch:
                    break
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._process(batch)
            if stopping and self._stop.is_set() and q.empty():
                self._flush()
                return

    def _flush(self) -> None:
        try:
            self.gateway.flush()
        except Exception:  # noqa: BLE001 - counts are statistics; never stop ingest for them
            log.exception("could not write rejection counts")

    def _process(self, batch: list) -> None:
        try:
            acks = self.gateway.handle_batch([(f, s) for f, s, _, _ in batch])
        except Exception:  # handle_batch does not raise; this is a last line of defence
            log.exception("ingest batch failed")
            return
        replies: dict[str, Reply] = {}
        for _, source, reply, _ in batch:
            if reply is not None:
                replies[source] = reply
        for ack in acks:
            reply = replies.get(ack.source)
            if reply is None:
                continue
            try:
                reply(ack)
            except Exception as exc:  # a lost ack is recoverable: the node re-sends
                log.warning("could not send ack to %s: %s", ack.source, exc)
        if self.gateway.last_commit_ok:
            for _, _, _, done in batch:
                if done is not None:
                    try:
                        done()
                    except Exception as exc:  # noqa: BLE001
                        log.warning("transport acknowledgement failed: %s", exc)
