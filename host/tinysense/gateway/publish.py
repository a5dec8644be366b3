"""`tinysense gateway --publish mqtt://HOST:PORT`: stored frames' records as labelled JSON on
MQTT, with Home Assistant discovery (docs/gateway.md "Publishing decoded data on MQTT").

Strictly after the commit, and never in ingest's way: the gateway's only part is the
`on_commit` hook, which sets an event. This thread reads what was stored from the database
by rowid watermark (`Store.frames_after`, its own connection), publishes each record QoS 1
on `tinysense/<device>/<name>`, and moves its cursor past a chunk only once the broker has
acknowledged every message of it; the cursor is persisted in the database (`cursors`
table, at most once a second and at stop). So with the broker down ingest and acks go on,
the frames stored meanwhile wait in the database, and are published when it is back (a
chunk cut by the outage is published again: delivery is at least once; a subscriber that
must not count twice keys on (device, key_version, counter, name, t_ms)).

Before the first state message of a record kind of a device, its discovery configs are
published retained (discovery.py); after every (re)connect and whenever Home Assistant
announces itself on `homeassistant/status`, all configs seen so far are published again.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass

from tinysense.errors import TinysenseError
from tinysense.gateway.core import iso, stored_decoded, to_json
from tinysense.gateway.discovery import DISCOVERY_PREFIX, discovery_messages, state_topic
from tinysense.gateway.mqtt import parse_mqtt_url
from tinysense.gateway.registry import ModelLabels, labels_for
from tinysense.gateway.store import Store, StoredFrame, open_db
from tinysense.uplink.labels import label_record

log = logging.getLogger("tinysense.gateway.publish")

CHUNK = 256              # frames read and published per round
PUBACK_TIMEOUT_S = 30.0  # a chunk not acknowledged by then counts as an outage
CURSOR_SAVE_S = 1.0      # the cursor reaches the database at least this often
RECONNECT_MAX_S = 5      # paho retries after 1 s, doubling up to this
INFLIGHT = 0             # no paho cap on QoS 1 in flight (a chunk bounds it): its
#                          per-PUBACK scan of the queue made any cap slower (measured)


@dataclass(frozen=True)
class PublishSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    client_id: str
    prefix: str          # Home Assistant discovery prefix; "" turns discovery off


def parse_publish_url(url: str) -> PublishSettings:
    """mqtt://[user[:password]@]host[:port][?client_id=ID&discovery_prefix=P|discovery=off]."""
    from urllib.parse import parse_qs, urlsplit

    try:
        base = parse_mqtt_url(url)   # TinysenseError on a bad scheme or host
    except ValueError:               # urllib: a port that is not a number 0..65535
        raise TinysenseError(f"bad MQTT URL {url!r}: the port is not a number 0..65535; "
                             "expected mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883") from None
    query = parse_qs(urlsplit(url if "://" in url else f"mqtt://{url}").query)
    unknown = set(query) - {"client_id", "discovery_prefix", "discovery"}
    if unknown:
        raise TinysenseError(f"bad MQTT URL {url!r}: unknown option {sorted(unknown)[0]!r}; "
                             "expected client_id, discovery_prefix or discovery=off")
    prefix = query.get("discovery_prefix", [DISCOVERY_PREFIX])[0]
    if query.get("discovery", ["on"])[0] in ("off", "0", "false", "no"):
        prefix = ""
    if prefix and not all(part and "+" not in part and "#" not in part
                          for part in prefix.split("/")):
        raise TinysenseError(f"bad discovery_prefix {prefix!r} in {url!r}; expected an MQTT "
                             "topic without wildcards, e.g. homeassistant")
    client_id = query.get("client_id", [f"tinysense-publisher-{socket.gethostname()}"])[0]
    return PublishSettings(base["host"], base["port"], base["username"], base["password"],
                           client_id, prefix)


def frame_messages(frame: StoredFrame, labels: dict) -> list[tuple[str, str]]:
    """[(topic, JSON text)] for one stored frame: one message per record (none when the
    payload does not decode: such frames stay in the store, `tinysense uplinks` shows them)."""
    decoded, error = stored_decoded(frame.ptype, frame.payload, frame.decoded,
                                    frame.decode_error)
    if decoded is None or error is not None:
        return []
    dev = frame.device_id
    head = {"device": f"{dev:08x}", "device_id": dev, "key_version": frame.key_version,
            "counter": frame.counter, "received_at": iso(frame.received_at),
            "boot": decoded.get("boot")}
    out = []
    for rec in decoded.get("records", ()):
        model = rec.get("model") if rec.get("type") in ("inference", "anomaly") else None
        msg = {**head, **label_record(rec, labels_for(labels, dev, model))}
        out.append((state_topic(dev, msg["name"]), to_json(msg)))
    return out


class Publisher:
    """The publishing thread: `start()`, `notify()` after commits, `close()` at stop.

    Args:
        db: the gateway's SQLite file (its own connection is opened here).
        url: the broker, as parse_publish_url takes it.
        start_at: where a cursor that was never saved starts: "end" (frames stored from now
            on; the default, so a first --publish does not flood the broker with history)
            or "start" (every stored frame).
    """

    def __init__(self, db, url: str, *, chunk: int = CHUNK, start_at: str = "end"):
        import paho.mqtt.client as mqtt

        self.settings = parse_publish_url(url)
        self.url = f"mqtt://{self.settings.host}:{self.settings.port}"
        self.cursor_name = f"mqtt-publish {self.settings.host}:{self.settings.port}"
        self.chunk = chunk
        self.start_at = start_at
        self.db = db
        self.published = 0          # state messages acknowledged by the broker
        self.frames = 0             # frames whose messages were all acknowledged
        self.outages = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._reannounce = threading.Event()
        self._down = False          # an outage was reported and has not ended
        self._ever_connected = False
        self._announced: set[tuple[int, str]] = set()
        self._labels: ModelLabels | None = None
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=self.settings.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.password)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        client.max_inflight_messages_set(INFLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        self.client = client
        self.store: Store | None = None
        self.cursor = 0
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Open the database, load the cursor, start connecting (never waits for the broker:
        the gateway ingests whether or not it is up)."""
        if str(self.db) == ":memory:":
            raise TinysenseError("--publish needs the gateway database in a file (--db PATH)")
        self.store = Store(open_db(self.db, synchronous="NORMAL"))
        self._labels = ModelLabels(self.store.conn)
        saved = self.store.cursor(self.cursor_name)
        if saved is None:
            saved = self.store.last_rowid() if self.start_at == "end" else 0
            self.store.set_cursor(self.cursor_name, saved)
        self.cursor = saved
        self._saved_cursor, self._saved_at = saved, time.monotonic()
        try:
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise TinysenseError(f"--publish {self.url}: {exc}") from None
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-publish", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def notify(self) -> None:
        """The gateway's on_commit hook: new frames are in the store (only sets an event)."""
        self._wake.set()

    def close(self, drain_s: float = 5.0) -> None:
        """Publish what is stored (for at most `drain_s` while connected), save the cursor,
        disconnect. What is left is published by the next run."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(drain_s + PUBACK_TIMEOUT_S)
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        if self.store is not None:
            self._save_cursor(force=True)
            self.store.conn.close()

    # -- paho callbacks (the network thread) ----------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self._report_down(f"connection refused: {reason_code}")
            return
        if self.settings.prefix:
            client.subscribe(f"{self.settings.prefix}/status", qos=1)
        self._reannounce.set()
        self._connected.set()
        if self._down:
            log.warning("publisher: broker %s is back; publishing the frames stored meanwhile",
                        self.url)
        elif not self._ever_connected:
            log.info("publisher: connected to %s", self.url)
        self._down = False
        self._ever_connected = True
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            self._report_down(f"disconnected ({reason_code})")

    def _on_connect_fail(self, client, userdata) -> None:
        self._connected.clear()
        self._report_down("cannot connect")

    def _report_down(self, why: str) -> None:
        if not self._down:   # once per outage
            self._down = True
            self.outages += 1
            log.warning("publisher: broker %s unreachable (%s); ingest and acks go on, frames "
                        "are published when it returns", self.url, why)

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == f"{self.settings.prefix}/status" and msg.payload == b"online":
            self._reannounce.set()      # Home Assistant restarted: announce everything again
            self._wake.set()

    # -- the publishing thread ------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set() and (not self._connected.is_set()
                                        or time.monotonic() > self._drain_until):
                return
            if not self._connected.is_set():
                continue
            try:
                more = self._round()
            except Exception:  # noqa: BLE001 - keep publishing; the cursor did not move
                log.exception("publisher: unexpected error; retrying")
                time.sleep(1.0)
                more = True
            if more:
                self._wake.set()
            elif self._stop.is_set():
                return

    def _round(self) -> bool:
        """Publish one chunk; True when there may be more to publish right away."""
        labels = self._labels.get()
        msgs: list[tuple[str, str, bool]] = []
        if self._reannounce.is_set() and self.settings.prefix:
            self._reannounce.clear()
            for dev, name in sorted(self._announced):
                msgs += self._configs(dev, name)
        rows = self.store.frames_after(self.cursor, self.chunk)
        new_kinds = set()
        states = 0
        for _, frame in rows:
            for topic, payload in frame_messages(frame, labels):
                key = (frame.device_id, topic.rsplit("/", 1)[1])
                if self.settings.prefix and key not in self._announced | new_kinds:
                    new_kinds.add(key)
                    msgs += self._configs(*key)
                msgs.append((topic, payload, False))
                states += 1
        if msgs and not self._publish_all(msgs):
            return False   # an outage: the same chunk again once reconnected
        self._announced |= new_kinds
        self.published += states
        if rows:
            self.frames += len(rows)
            self.cursor = rows[-1][0]
            self._save_cursor()
        return len(rows) == self.chunk

    def _configs(self, dev: int, name: str) -> list[tuple[str, str, bool]]:
        return [(topic, json.dumps(payload, separators=(",", ":")), True)
                for topic, payload in discovery_messages(dev, name, prefix=self.settings.prefix,
                                                         model_name=self._labels.names.get(dev))]

    def _publish_all(self, msgs: list[tuple[str, str, bool]]) -> bool:
        """Publish QoS 1 and wait for every PUBACK; False if the connection went first."""
        infos = []
        for topic, payload, retain in msgs:
            info = self.client.publish(topic, payload, qos=1, retain=retain)
            if info.rc != 0 and not self._connected.is_set():
                return False
            infos.append(info)
        deadline = time.monotonic() + PUBACK_TIMEOUT_S
        for info in infos:
            while not info.is_published():
                if not self._connected.is_set() or time.monotonic() > deadline:
                    return False
                try:
                    info.wait_for_publish(0.1)   # bounded, so an outage is noticed
                except (RuntimeError, ValueError):   # not sent: the connection went
                    return False
        return True

    def _save_cursor(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.cursor != self._saved_cursor and (force or now - self._saved_at >= CURSOR_SAVE_S):
            self.store.set_cursor(self.cursor_name, self.cursor)
            self._saved_cursor, self._saved_at = self.cursor, now
