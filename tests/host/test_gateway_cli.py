"""`tinysense gateway`, `tinysense uplinks` and `tinysense bench-gateway` from the CLI side."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time

import pytest

from tinysense.cli import main
from tinysense.errors import TinysenseError
from tinysense.gateway import Gateway, Registry, Store, new_key, open_db
from tinysense.gateway.run import GatewayConfig, parse_since, run_gateway
from tinysense.uplink import PTYPE_RECORDS, encode_records, seal

A, B = 0x10, 0x20


@pytest.fixture
def filled_db(tmp_path):
    db = tmp_path / "g.db"
    conn = open_db(db)
    keys = {A: new_key(), B: new_key()}
    for dev, key in keys.items():
        Registry(conn).set_key(dev, key)
    gw = Gateway(Store(conn))
    for c in range(3):
        pt = encode_records([{"type": "reading", "sensor": 1, "t_ms": c, "values": [c, 2 * c]},
                             {"type": "inference", "model": 2, "t_ms": c, "class": 1,
                              "confidence": 128}], boot=4, dropped_total=1)
        gw.handle(seal(keys[A], A, c, PTYPE_RECORDS, pt), "udp:1.2.3.4:5")
    gw.handle(seal(keys[B], B, 0, PTYPE_RECORDS, b"\xff\x00"), "serial:/dev/x")  # undecodable
    raw = Gateway(Store(conn), decode=False)  # decoded when read
    pt = encode_records([{"type": "event", "code": 9, "t_ms": 7, "value": -3}])
    raw.handle(seal(keys[B], B, 1, PTYPE_RECORDS, pt), "mqtt:tinysense/00000020/up")
    conn.close()
    return db


def test_uplinks_json_lines(filled_db, capsys):
    assert main(["uplinks", "--db", str(filled_db)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 5
    a0 = next(x for x in lines if x["device_id"] == A and x["counter"] == 0)
    assert a0["device"] == "00000010" and a0["boot"] == 4 and a0["dropped_total"] == 1
    assert a0["records"][0] == {"type": "reading", "sensor": 1, "t_ms": 0, "dtype": "i16",
                                "values": [0, 0], "name": "sensor_1"}
    bad = next(x for x in lines if x["device_id"] == B and x["counter"] == 0)
    assert bad["payload_hex"] == "ff00" and bad["decode_error"]
    late = next(x for x in lines if x["device_id"] == B and x["counter"] == 1)
    assert late["records"] == [{"type": "event", "code": 9, "t_ms": 7, "value": -3,
                                "name": "event_9", "state": -3}]


def test_uplinks_filters_and_csv(filled_db, capsys):
    assert main(["uplinks", "--db", str(filled_db), "--device", "0x10"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["uplinks", "--db", str(filled_db), "--since", "1h"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert main(["uplinks", "--db", str(filled_db), "--since", "2999-01-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["uplinks", "--db", str(filled_db), "--format", "csv", "--device", "16"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 6  # 3 frames x 2 records
    assert rows[0]["type"] == "reading" and rows[0]["values"] == "0 0"
    assert rows[1]["type"] == "inference" and rows[1]["values"] == "1 128"


def test_user_errors_are_one_line(filled_db, capsys):
    assert main(["uplinks", "--db", str(filled_db), "--since", "yesterday-ish"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysense: error: bad time") and err.count("\n") == 1
    assert main(["uplinks", "--db", str(filled_db), "--device", "0xfffffffff"]) == 1
    assert "bad device id" in capsys.readouterr().err
    assert main(["gateway", "--db", str(filled_db)]) == 1
    assert "no transport given" in capsys.readouterr().err
    missing = filled_db.parent / "nope.db"
    assert main(["uplinks", "--db", str(missing)]) == 1
    assert "no gateway database" in capsys.readouterr().err and not missing.exists()


def test_parse_since():
    assert parse_since("90s", now=1000.0) == 910.0
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("1764400000") == 1764400000.0
    assert parse_since("2025-11-29T07:06:40Z") == 1764400000.0
    with pytest.raises(TinysenseError):
        parse_since("soon")


def test_gateway_prints_a_line_per_frame_and_counts(tmp_path):
    db = tmp_path / "g.db"
    conn = open_db(db)
    key = new_key()
    Registry(conn).set_key(A, key)
    conn.close()
    out = io.StringIO()
    stop = threading.Event()
    config = GatewayConfig(db=str(db), udp="127.0.0.1:0")
    t = threading.Thread(target=run_gateway, args=(config, out, stop))
    t.start()
    deadline = time.monotonic() + 10
    while "listening on udp" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    port = int(out.getvalue().split("listening on udp ")[1].split()[0].rsplit(":", 1)[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    pt = encode_records([{"type": "inference", "model": 1, "t_ms": 5, "class": 3,
                          "confidence": 230}])
    f = seal(key, A, 7, PTYPE_RECORDS, pt)
    sock.sendto(f, ("127.0.0.1", port))
    sock.recv(100)
    sock.sendto(f, ("127.0.0.1", port))
    sock.recv(100)
    sock.sendto(b"short", ("127.0.0.1", port))
    sock.close()
    stop.set()  # what already arrived is still processed before the gateway stops
    t.join(10)
    text = out.getvalue()
    assert "00000010 #7        records    1 rec: inference class 3 90%" in text
    assert "duplicate" in text
    assert "gateway: rejections: replay=1, truncated=1" in text


def test_bench_gateway_runs(capsys):
    assert main(["bench-gateway", "--frames", "3000", "--devices", "10", "--no-node"]) == 0
    out = capsys.readouterr().out
    assert "ingest, decode on ingest" in out and "frames/s" in out
    assert "3000/3000 acked" in out or "acked" in out


def test_parse_addresses():
    from tinysense.gateway.mqtt import parse_mqtt_url
    from tinysense.gateway.udp import parse_hostport

    assert parse_hostport("[::1]:5000") == ("::1", 5000)
    assert parse_hostport(":47801") == ("0.0.0.0", 47801)
    assert parse_hostport("10.0.0.2") == ("10.0.0.2", 47800)
    with pytest.raises(TinysenseError, match="HOST:PORT"):
        parse_hostport("host:http")
    url = parse_mqtt_url("mqtt://u:p@broker:1884?client_id=gw7")
    assert (url["host"], url["port"], url["username"], url["password"], url["client_id"]) == (
        "broker", 1884, "u", "p", "gw7")
    assert parse_mqtt_url("127.0.0.1")["port"] == 1883
    with pytest.raises(TinysenseError, match="MQTT URL"):
        parse_mqtt_url("http://x")


def test_devices_lists_without_keys(filled_db, capsys):
    assert main(["devices", "--db", str(filled_db)]) == 0
    out = capsys.readouterr().out
    assert "00000010" in out and "00000020" in out
    lines = out.splitlines()
    a = next(x for x in lines if x.startswith("00000010"))
    assert a.split()[1:4] == ["16", "1", "3"]  # id, key version, frames
    conn = open_db(filled_db)
    for dev in (A, B):
        key = Registry(conn).lookup(dev).key
        assert key.hex() not in out
    conn.close()


def test_devices_remove(filled_db, capsys):
    """`devices remove ID` deletes the device and its key (its frames stay); an unknown id,
    a bad id and a missing database are one-line errors that change nothing."""
    assert main(["devices", "remove", "0x10", "--db", str(filled_db)]) == 0
    assert "removed device 16 (0x00000010)" in capsys.readouterr().out
    conn = open_db(filled_db)
    assert Registry(conn).lookup(A) is None and Registry(conn).lookup(B) is not None
    assert conn.execute("SELECT COUNT(*) FROM frames WHERE device_id=?", (A,)).fetchone()[0] == 3
    conn.close()
    assert main(["devices", "--db", str(filled_db)]) == 0
    listed = capsys.readouterr().out
    assert "00000020" in listed and "00000010" not in listed
    # --db before the sub-command counts too
    assert main(["devices", "--db", str(filled_db), "remove", "16"]) == 1
    err = capsys.readouterr().err
    assert "is not in the registry" in err and err.count("\n") == 1
    assert main(["devices", "remove", "nope", "--db", str(filled_db)]) == 1
    assert "bad device id" in capsys.readouterr().err
    missing = filled_db.parent / "nope.db"
    assert main(["devices", "remove", "32", "--db", str(missing)]) == 1
    assert "no gateway database" in capsys.readouterr().err and not missing.exists()


LABELS = ["idle", "walking", "running"]


def test_devices_model_then_uplinks_show_labels(filled_db, tmp_path, capsys):
    """`devices model ID META` records the labels; `uplinks` (JSON and CSV) and `devices`
    then show class names and record names, not indices and codes."""
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"name": "gait", "labels": LABELS}))
    assert main(["devices", "model", "0x10", str(meta), "--model-id", "2",
                 "--db", str(filled_db)]) == 0
    out = capsys.readouterr().out
    assert "model 2: gait, labels idle, walking, running" in out
    assert main(["uplinks", "--db", str(filled_db), "--device", "16"]) == 0
    frames = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    inf = frames[0]["records"][1]
    assert (inf["name"], inf["class"], inf["label"], inf["state"], inf["probability"]) == \
        ("inference", 1, "walking", "walking", 0.5)
    assert main(["uplinks", "--db", str(filled_db), "--format", "csv", "--device", "16"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (rows[1]["name"], rows[1]["label"]) == ("inference", "walking")
    assert rows[0]["name"] == "sensor_1"
    assert main(["devices", "--db", str(filled_db)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("00000010"))
    assert "2: gait (idle, walking, running; meta " in line
    # errors: one line each, nothing recorded
    assert main(["devices", "model", "0x99", str(meta), "--db", str(filled_db)]) == 1
    assert "not in the registry" in capsys.readouterr().err
    assert main(["devices", "model", "16", str(tmp_path / "none.json"),
                 "--db", str(filled_db)]) == 1
    assert "not a model meta.json" in capsys.readouterr().err
    assert main(["devices", "model", "16", str(meta), "--model-id", "300",
                 "--db", str(filled_db)]) == 1
    assert "out of range" in capsys.readouterr().err


def test_old_database_without_models_still_reads_and_migrates(tmp_path, capsys):
    """A database written before the models and cursors tables: `uplinks` and `devices`
    read it as it is (read-only, nothing added); the gateway's next open adds the tables."""
    import sqlite3

    from tinysense.gateway import store

    db = tmp_path / "old.db"
    old_schema = store.SCHEMA.split("CREATE TABLE IF NOT EXISTS models(")[0]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(old_schema)
    key = new_key()
    conn.execute("INSERT INTO devices VALUES(?,?,1,0,NULL)", (A, key))
    pt = encode_records([{"type": "inference", "model": 1, "t_ms": 1, "class": 1,
                          "confidence": 128}])
    Gateway(Store(conn)).handle(seal(key, A, 1, PTYPE_RECORDS, pt))
    conn.close()
    assert main(["uplinks", "--db", str(db)]) == 0
    rec = json.loads(capsys.readouterr().out)["records"][0]
    assert (rec["name"], rec["label"]) == ("inference", "class 1")   # no labels known
    assert main(["devices", "--db", str(db)]) == 0
    assert "00000010" in capsys.readouterr().out
    tables = {r[0] for r in sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert "models" not in tables   # the readers changed nothing
    conn = open_db(db)              # what the gateway and `devices model` open
    Registry(conn).set_model(A, 1, "m", LABELS, b"{}")
    conn.close()
    assert main(["uplinks", "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out)["records"][0]["label"] == "walking"
