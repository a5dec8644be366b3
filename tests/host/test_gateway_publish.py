"""`tinysense gateway --publish`: labelled JSON and Home Assistant discovery on a real
mosquitto, read by a real paho subscriber; a broker restart mid-run loses no publication.

Frames go in over real UDP on loopback (sealed by the host codec) and are acknowledged;
the publisher reads them back from the store (docs/gateway.md "Publishing on MQTT")."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time

import pytest

from tinysense.gateway import Registry, new_key, open_db
from tinysense.gateway.run import GatewayConfig, RunningGateway, set_device_model
from tinysense.uplink import PTYPE_RECORDS, decode_ack, encode_records, open_frame, seal

DEV = 0x7E5D00A1
LABELS = ["badminton", "running", "standing", "walking"]


@pytest.fixture
def provisioned(tmp_path):
    db = tmp_path / "gateway.db"
    conn = open_db(db)
    key = new_key()
    Registry(conn).set_key(DEV, key)
    conn.close()
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"name": "activity", "labels": LABELS}))
    set_device_model(str(db), DEV, meta)
    return db, key


def summary_frame(key: bytes, counter: int) -> bytes:
    """What the app's summary frame holds: heartbeat, counts per class, the decision,
    free heap, queue depth."""
    t = 1000 * counter
    records = [{"type": "event", "code": 3, "t_ms": t, "value": 12},
               {"type": "reading", "sensor": 200, "t_ms": t, "values": [1, 7, 0, 4]},
               {"type": "inference", "model": 1, "t_ms": t, "class": counter % 4,
                "confidence": 230},
               {"type": "event", "code": 5, "t_ms": t, "value": 39104},
               {"type": "event", "code": 6, "t_ms": t, "value": 0}]
    return seal(key, DEV, counter, PTYPE_RECORDS, encode_records(records, boot=2))


class Subscriber:
    """A paho subscriber on `topics`, collecting (topic, payload dict, retain)."""

    def __init__(self, host: str, port: int, topics: list[str], client_id: str,
                 persistent: bool = False):
        import paho.mqtt.client as mqtt

        self.got: list[tuple[str, dict, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id, clean_session=not persistent,
                                  protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(1, 2)

        def on_connect(client, userdata, flags, rc, properties=None):
            for t in topics:
                client.subscribe(t, qos=1)

        def on_message(client, userdata, msg):
            with self.lock:
                self.got.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a, **k: self.subscribed.set()
        self.client.on_message = on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the subscriber was not subscribed"

    def messages(self) -> list[tuple[str, dict, bool]]:
        with self.lock:
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def send_and_ack(gw: RunningGateway, key: bytes, counters) -> set[int]:
    host, port = gw.addresses["udp"].rsplit(":", 1)
    acked: set[int] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        for c in counters:
            sock.sendto(summary_frame(key, c), (host, int(port)))
            header, plaintext = open_frame(key, sock.recvfrom(2048)[0])
            assert header.direction == 1
            acked.update(decode_ack(plaintext))
    return acked


@pytest.mark.mosquitto
def test_labelled_json_and_retained_discovery(provisioned, mosquitto):
    db, key = provisioned
    host, port = mosquitto
    sub = Subscriber(host, port, [f"tinysense/{DEV:08x}/#"], "t-sub-json")
    gw = RunningGateway(GatewayConfig(db=str(db), udp="127.0.0.1:0",
                                      publish=f"mqtt://{host}:{port}?client_id=t-pub-1"),
                        on_frame=None)
    try:
        assert send_and_ack(gw, key, range(3)) == {0, 1, 2}
        assert wait_for(lambda: len(sub.messages()) >= 15), sub.messages()
    finally:
        gw.close()
        sub.close()
    by_topic: dict[str, list[dict]] = {}
    for topic, msg, retain in sub.messages():
        assert not retain
        by_topic.setdefault(topic, []).append(msg)
    base = f"tinysense/{DEV:08x}"
    assert sorted(by_topic) == sorted(f"{base}/{n}" for n in
                                      ("heartbeat", "counts", "inference", "mem_free", "queued"))
    inf = by_topic[f"{base}/inference"]
    assert [m["counter"] for m in inf] == [0, 1, 2]
    assert [m["label"] for m in inf] == LABELS[:3]     # names, not indices
    m = inf[1]
    assert (m["device"], m["device_id"], m["key_version"], m["boot"]) == (f"{DEV:08x}", DEV, 1, 2)
    assert (m["name"], m["class"], m["confidence"], m["probability"], m["t_ms"]) == \
        ("inference", 1, 230, 0.8984, 1000)
    assert m["received_at"].endswith("+00:00")
    counts = by_topic[f"{base}/counts"][0]
    assert counts["by_class"] == dict(zip(LABELS, [1, 7, 0, 4]))
    assert (counts["unit"], counts["state"]) == ("windows", "running")
    heap = by_topic[f"{base}/mem_free"][0]
    assert (heap["value"], heap["unit"], heap["state"]) == (39104, "B", 39104)

    # a subscriber that comes later still gets every config: they are retained
    late = Subscriber(host, port, ["homeassistant/#"], "t-sub-ha")
    try:
        assert wait_for(lambda: len(late.messages()) >= 6, timeout=10), late.messages()
        configs = late.messages()
    finally:
        late.close()
    node = f"tinysense_{DEV:08x}"
    topics = {t: (c, r) for t, c, r in configs if f"/{node}/" in t}
    expected = {f"homeassistant/sensor/{node}/{o}/config" for o in
                ("heartbeat", "counts", "inference", "inference_confidence", "mem_free",
                 "queued")}
    assert expected <= set(topics), sorted(topics)
    for topic, (config, retain) in topics.items():
        assert retain, topic
        _, component, node_id, object_id, _ = topic.split("/")
        assert config["unique_id"] == f"{node_id}_{object_id}"
        assert config["state_topic"].startswith(f"{base}/")
        assert config["device"]["identifiers"] == [node]
        assert config["device"]["model"] == "activity"
        assert "value_json." in config["value_template"]
    cls = topics[f"homeassistant/sensor/{node}/inference/config"][0]
    assert (cls["state_topic"], cls["value_template"]) == \
        (f"{base}/inference", "{{ value_json.label }}")
    heap_cfg = topics[f"homeassistant/sensor/{node}/mem_free/config"][0]
    assert (heap_cfg["unit_of_measurement"], heap_cfg["device_class"],
            heap_cfg["state_class"]) == ("B", "data_size", "measurement")


@pytest.mark.mosquitto
def test_broker_restart_mid_run_loses_no_publication(provisioned, own_mosquitto, caplog):
    """The broker goes away mid-run: ingest and acks go on, the outage is reported once,
    and after the restart every stored frame's records arrive (at least once)."""
    db, key = provisioned
    broker = own_mosquitto
    caplog.set_level(logging.INFO, logger="tinysense.gateway.publish")
    # persistent session: the broker keeps what is published for it while it reconnects
    sub = Subscriber(broker.host, broker.port, [f"tinysense/{DEV:08x}/inference"],
                     "t-sub-restart", persistent=True)
    gw = RunningGateway(GatewayConfig(db=str(db), udp="127.0.0.1:0",
                                      publish=f"mqtt://{broker.host}:{broker.port}"
                                              "?client_id=t-pub-2"),
                        on_frame=None)

    def published() -> set[int]:
        return {m["counter"] for _, m, _ in sub.messages()}

    try:
        assert send_and_ack(gw, key, range(10)) == set(range(10))
        assert wait_for(lambda: published() == set(range(10))), sorted(published())
        broker.stop()
        # the broker is down: frames are still stored and acknowledged at once
        assert send_and_ack(gw, key, range(10, 40)) == set(range(10, 40))
        assert wait_for(lambda: gw.publisher.outages == 1, timeout=10)
        broker.start()   # same port, same persistence file
        assert wait_for(lambda: published() == set(range(40)), timeout=60), \
            sorted(set(range(40)) - published())
    finally:
        gw.close()
        sub.close()
    conn = open_db(db)
    assert conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 40
    cursor = conn.execute("SELECT rowid FROM cursors").fetchone()[0]
    assert cursor == conn.execute("SELECT MAX(rowid) FROM frames").fetchone()[0]
    conn.close()
    text = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in t for t in text) == 1, text
    assert sum("is back" in t for t in text) == 1, text
    labels = {m["counter"]: m["label"] for _, m, _ in sub.messages()}
    assert all(labels[c] == LABELS[c % 4] for c in range(40))


@pytest.mark.mosquitto
def test_cursor_starts_at_the_end_then_resumes_across_runs(provisioned, mosquitto):
    """A first --publish does not replay history; frames stored while no publisher ran
    (a gateway without --publish, or stopped) are published by the next one."""
    from tinysense.gateway import Gateway, Store
    from tinysense.gateway.publish import Publisher

    db, key = provisioned
    host, port = mosquitto
    sub = Subscriber(host, port, [f"tinysense/{DEV:08x}/inference"], "t-sub-cursor")
    conn = open_db(db)
    gw = Gateway(Store(conn))
    url = f"mqtt://{host}:{port}?client_id=t-pub-3&discovery=off"

    def counters() -> list[int]:
        return sorted(m["counter"] for _, m, _ in sub.messages())

    try:
        for c in range(5):                      # history before any --publish
            gw.handle(summary_frame(key, c))
        pub = Publisher(db, url)
        pub.start()
        gw.on_commit = pub.notify
        assert wait_for(lambda: pub.connected, timeout=10)
        for c in range(5, 8):
            gw.handle(summary_frame(key, c))
        assert wait_for(lambda: counters() == [5, 6, 7]), counters()
        pub.close()
        gw.on_commit = None
        for c in range(8, 12):                  # stored while no publisher runs
            gw.handle(summary_frame(key, c))
        pub = Publisher(db, url)
        pub.start()
        assert wait_for(lambda: counters() == list(range(5, 12))), counters()
        pub.close()
    finally:
        conn.close()
        sub.close()
    assert not any(cfg for t, cfg, _ in sub.messages() if t.startswith("homeassistant/"))


def test_bad_publish_url_is_one_line_and_exit_2(tmp_path):
    for url in ("http://127.0.0.1:1883", "mqtt://127.0.0.1:99999"):
        r = subprocess.run([sys.executable, "-m", "tinysense", "gateway", "--udp",
                            "127.0.0.1:0", "--db", str(tmp_path / "g.db"), "--publish", url],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (url, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tinysense: error: --publish:"), lines
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "g.db").exists()   # nothing started


@pytest.mark.parametrize("url", ["mqtt://", "ws://h:1883", "mqtt://h:1883?discovery_prefix=a//b",
                                 "mqtt://h:1883?bogus=1", "mqtt://h:port"])
def test_bad_publish_urls(url):
    from tinysense.errors import TinysenseError
    from tinysense.gateway.publish import parse_publish_url

    with pytest.raises(TinysenseError, match="bad"):
        parse_publish_url(url)


def test_publish_url_options():
    from tinysense.gateway.publish import parse_publish_url

    s = parse_publish_url("mqtt://u:pw@broker.lan?client_id=gw7&discovery_prefix=ha")
    assert (s.host, s.port, s.username, s.password, s.client_id, s.prefix) == \
        ("broker.lan", 1883, "u", "pw", "gw7", "ha")
    assert parse_publish_url("mqtt://b:1884?discovery=off").prefix == ""
