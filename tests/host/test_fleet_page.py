"""The fleet page (`tinysense gateway --http`): a real gateway process receives sealed frames
over UDP, a real headless Chromium loads its page, which must show the devices and their
data and follow a new frame; the token off loopback; one-line errors; read-only."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from browser import Browser

from tinysense.cli import main
from tinysense.formats import ota
from tinysense.formats.app import RECORD_IDS
from tinysense.gateway import Registry, new_key, open_db
from tinysense.gateway.updates import UpdateQueue
from tinysense.uplink import PTYPE_RECORDS, encode_records, seal

A, B = 0x2A, 0x07
MEM, QUEUED, CRASH = RECORD_IDS["EV_MEM_FREE"], RECORD_IDS["EV_QUEUED"], RECORD_IDS["EV_CRASH"]
TOKEN = "fleet-test-token-3f9a"


def frame_records(c: int, heap: int, crash: bool = False) -> list[dict]:
    recs = [{"type": "reading", "sensor": 1, "t_ms": 1000 * c, "values": [c * 7 % 23, c]},
            {"type": "event", "code": MEM, "t_ms": 1000 * c, "value": heap},
            {"type": "event", "code": QUEUED, "t_ms": 1000 * c, "value": c % 3}]
    if crash:
        recs.append({"type": "event", "code": CRASH, "t_ms": 1000 * c, "value": 1})
    return recs


class Fleet:
    """Two provisioned devices (A has a confirmed OTA update), a gateway process on them."""

    def __init__(self, tmp_path, http: str, env: dict | None = None):
        self.db = tmp_path / "gw.db"
        conn = open_db(self.db)
        self.keys = {A: new_key(), B: new_key()}
        for dev, key in self.keys.items():
            Registry(conn).set_key(dev, key)
        Registry(conn).set_model(A, 1, "activity", ["idle", "walk", "run"], b"{}")
        queue = UpdateQueue(conn)
        u = queue.push(A, ota.build_bundle(bytes(range(256)) * 8, [(b"\1\2", b"\3")]),
                       label="v2")
        queue.note(u, [(u.update_id, "step", ota.STEP_CODES["confirmed"])])
        self.model = u.model_sha256
        conn.close()
        self.log = open(tmp_path / "gateway.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tinysense", "gateway", "--udp", "127.0.0.1:0", "--http",
             http, "--db", str(self.db), "-q"], stdout=subprocess.PIPE, stderr=self.log,
            text=True, env={**os.environ, **(env or {})})
        self.addresses = {}
        deadline = time.monotonic() + 30
        while "http" not in self.addresses:
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.close()
                self.log.seek(0)
                pytest.fail(f"gateway did not start: {line!r} {self.log.read()[-2000:]}")
            m = re.match(r"gateway: listening on (\w+) (\S+)", line)
            if m:
                self.addresses[m.group(1)] = m.group(2)
        host, port = self.addresses["udp"].rsplit(":", 1)
        self.udp = (host, int(port))
        self.url = self.addresses["http"]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(10)

    def send(self, dev: int, counter: int, records: list[dict], dropped: int = 0) -> None:
        """One sealed frame over UDP; returns when the gateway acknowledged it (stored)."""
        pt = encode_records(records, boot=1, dropped_total=dropped)
        self.sock.sendto(seal(self.keys[dev], dev, counter, PTYPE_RECORDS, pt), self.udp)
        self.sock.recv(512)

    def close(self) -> None:
        self.sock.close() if hasattr(self, "sock") else None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path)
    yield b
    b.close()


def cells(browser: Browser, device: str) -> dict:
    return browser.eval(f"""Object.fromEntries([...document.querySelectorAll(
        'tr[data-device="{device}"] td')].map(td => [td.dataset.field, td.textContent]))""")


def marks(browser: Browser, plot: str, tag: str) -> int:
    return browser.eval(f"document.querySelectorAll('svg[data-plot=\"{plot}\"] {tag}').length")


def test_fleet_page_shows_devices_and_follows_new_frames(tmp_path, browser):
    fleet = Fleet(tmp_path, "127.0.0.1:0")
    try:
        for c in range(1, 11):
            fleet.send(A, c, frame_records(c, 60000 - c, crash=c == 5), dropped=c // 4)
        for c in range(1, 4):
            fleet.send(B, c, frame_records(c, 31000 + c))
        fleet.sock.sendto(b"junk", fleet.udp)   # rejected, of no device: truncated
        forged = seal(new_key(), A, 99, PTYPE_RECORDS, encode_records(frame_records(99, 1)))
        fleet.sock.sendto(forged, fleet.udp)    # rejected, of device A: bad_tag
        fleet.send(B, 3, frame_records(3, 31003))   # a duplicate: acked again, replay of B

        browser.goto(fleet.url)   # loopback: no token needed
        browser.wait_for("document.querySelectorAll('#devices tbody tr').length == 2 && "
                         "document.querySelectorAll('#rejections li[data-reason]').length == 3 "
                         "&& "
                         "document.querySelectorAll('#plots .device').length == 2",
                         what="both devices, the rejection and the plots")
        a = cells(browser, "0000002a")
        assert a["heap_free"] == "59990" and a["queued"] == "1" and a["crashes"] == "1"
        assert a["dropped_total"] == "2" and a["frames"] == "10" and a["key_version"] == "1"
        assert a["last_counter"] == "10" and a["last_seen"].endswith("s ago")
        assert a["rejections"] == "bad_tag: 1"
        assert a["model_sha256"].startswith(fleet.model[:12]) and "v2" in a["model_sha256"]
        b = cells(browser, "00000007")
        assert (b["heap_free"], b["crashes"], b["frames"]) == ("31003", "0", "3")
        assert b["model_sha256"] == "deployed" and b["rejections"] == "replay: 1"
        assert browser.eval("[...document.querySelectorAll('#rejections li')].map(li => "
                            "li.textContent).join(', ')") == "bad_tag: 1, replay: 1, truncated: 1"
        # the plots: one line per reading value (2 values of sensor 1) through every reading
        assert marks(browser, "readings-0000002a", "polyline") == 2
        assert browser.eval("document.querySelector('svg[data-plot=\"readings-0000002a\"] "
                            "polyline').getAttribute('points').split(' ').length") == 10
        assert marks(browser, "events-0000002a", "circle") == 10 * 2 + 1
        assert marks(browser, "events-0000002a", "circle[data-event=crash]") == 1
        assert marks(browser, "events-00000007", "circle") == 3 * 2
        browser.screenshot(tmp_path / "fleet-before.png")

        fleet.send(A, 11, frame_records(11, 12345, crash=True)
                   + [{"type": "inference", "model": 1, "t_ms": 11000, "class": 2,
                       "confidence": 200}], dropped=7)
        browser.wait_for("document.querySelector('tr[data-device=\"0000002a\"] "
                         "td[data-field=heap_free]').textContent == '12345'",
                         what="the new frame's heap free", timeout=10)
        a = cells(browser, "0000002a")
        assert (a["crashes"], a["dropped_total"], a["frames"]) == ("2", "7", "11")
        browser.wait_for("document.querySelector('svg[data-plot=\"readings-0000002a\"] "
                         "polyline').getAttribute('points').split(' ').length == 11",
                         what="the new reading in the plot", timeout=10)
        assert marks(browser, "events-0000002a", "circle[data-event=crash]") == 2
        assert browser.eval("document.querySelector('svg[data-plot=\"events-0000002a\"] "
                            "circle[data-event=inference] title').textContent") == "inference run"
        assert browser.eval("document.querySelector('svg[data-plot=\"readings-0000002a\"] "
                            "polyline title').textContent") == "sensor_1[0]"
        browser.screenshot(tmp_path / "fleet-after.png")
        # no login on loopback, but a page under another name (DNS rebinding) is refused
        assert _status(fleet.url + "api/fleet", {"Host": "attacker.example:80"}) == 403
        assert _status(fleet.url + "api/fleet", {"Host": "localhost"}) == 200

        # the JSON the page reads (docs/gateway.md)
        data = json.load(urllib.request.urlopen(fleet.url + "api/fleet", timeout=10))
        dev = {d["device"]: d for d in data["devices"]}
        assert dev["0000002a"]["model_sha256"] == fleet.model
        assert dev["0000002a"]["heap_free"] == 12345 and dev["00000007"]["queued"] == 0
        assert data["rejections"]["global"] == {"bad_tag": 1, "replay": 1, "truncated": 1}
        assert dev["0000002a"]["rejections"] == {"bad_tag": 1}
        assert dev["00000007"]["rejections"] == {"replay": 1}
        series = json.load(urllib.request.urlopen(fleet.url + "api/devices/42", timeout=10))
        assert [r["values"] for r in series["readings"]][-1] == [11 * 7 % 23, 11]
        assert [e["name"] for e in series["events"][-2:]] == ["crash", "inference"]
        assert series["events"][-1]["state"] == "run"   # the class label from the registry
    finally:
        fleet.close()


def _status(url: str, headers: dict | None = None, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {},
                                                           method=method), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_token_required_off_loopback(tmp_path, browser, capsys):
    # refused to start without one: a one-line usage error
    assert main(["gateway", "--http", "0.0.0.0:0", "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "token is required" in err and "TINYSENSE_HTTP_TOKEN" in err

    fleet = Fleet(tmp_path, "0.0.0.0:0", env={"TINYSENSE_HTTP_TOKEN": TOKEN})
    try:
        port = fleet.url.rstrip("/").rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}/"
        fleet.send(A, 1, frame_records(1, 777))
        assert _status(base) == 401
        assert _status(base + "api/fleet") == 401
        assert _status(base + "api/fleet", {"Authorization": "Bearer wrong"}) == 401
        assert _status(base + "api/fleet?token=" + TOKEN[:-1]) == 401
        assert _status(base + "api/fleet", {"Authorization": f"Bearer {TOKEN}"}) == 200
        assert _status(base + f"api/fleet?token={TOKEN}") == 200
        assert _status(base + "api/fleet", {"Authorization": f"Bearer {TOKEN}"},
                       method="POST") == 405   # read-only
        assert _status(base + "api/fleet", method="POST") == 401
        # the page opened with ?token= passes it on to its JSON requests
        browser.goto(base + f"?token={TOKEN}")
        browser.wait_for("document.querySelector('tr[data-device=\"0000002a\"] "
                         "td[data-field=heap_free]')?.textContent == '777'",
                         what="device 0000002a with its heap free")
        fleet.log.seek(0)
        assert TOKEN not in fleet.log.read()   # never logged
    finally:
        fleet.close()


def test_http_one_line_errors(tmp_path, capsys):
    db = str(tmp_path / "g.db")
    for bad in ("nonsense", "127.0.0.1:99999", "127.0.0.1:http", "[zz::1]:80"):
        assert main(["gateway", "--http", bad, "--db", db]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert err.startswith("tinysense: error: bad --http value") and "\n" not in err
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        assert main(["gateway", "--http", f"127.0.0.1:{port}", "--db", db]) == 1
        err = capsys.readouterr().err.strip()
        assert "address already in use" in err and "\n" not in err
    finally:
        taken.close()


def test_the_page_reads_through_a_read_only_connection(tmp_path):
    from tinysense.gateway.fleet import FleetView
    from tinysense.gateway.run import open_db_readonly

    db = tmp_path / "g.db"
    open_db(db).close()
    view = FleetView(open_db_readonly(db))
    assert view.fleet()["devices"] == []
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        view.conn.execute("DELETE FROM rejections")
    view.conn.close()


def test_bench_fleet_runs(capsys):
    assert main(["bench-gateway", "--fleet", "--frames", "3000", "--devices", "5"]) == 0
    out = capsys.readouterr().out
    assert "fleet page over 3,000 frames of 5 devices" in out
    assert re.search(r"/api/fleet +\d+\.\d+ ms", out) and "first read" in out


def test_the_view_counts_removed_raw_and_undecodable_frames(tmp_path):
    from tinysense.gateway import Gateway, Store
    from tinysense.gateway.fleet import FleetView
    from tinysense.gateway.run import open_db_readonly

    db = tmp_path / "g.db"
    conn = open_db(db)
    keys = {A: new_key(), B: new_key()}
    for dev, key in keys.items():
        Registry(conn).set_key(dev, key)
    gw, raw = Gateway(Store(conn)), Gateway(Store(conn), decode=False)
    gw.handle(seal(keys[A], A, 1, PTYPE_RECORDS, encode_records(frame_records(1, 500))))
    raw.handle(seal(keys[A], A, 2, PTYPE_RECORDS, encode_records(frame_records(2, 400, True))))
    gw.handle(seal(keys[A], A, 3, PTYPE_RECORDS, b"\xff\x00"))      # stored raw, undecodable
    gw.handle(seal(keys[B], B, 1, PTYPE_RECORDS, encode_records(frame_records(1, 9))))
    Registry(conn).remove(B)
    view = FleetView(open_db_readonly(db))
    devs = {d["device_id"]: d for d in view.fleet()["devices"]}
    a, b = devs[A], devs[B]
    assert (a["frames"], a["heap_free"], a["crashes"], a["undecodable"]) == (3, 400, 1, 1)
    assert a["registered"] and a["last_counter"] == 3
    assert not b["registered"] and b["key_version"] == 1 and b["heap_free"] == 9
    assert view.device(0x1234) is None and len(view.device(A)["readings"]) == 2
    # only what arrived since: a new frame moves the figures on
    gw.handle(seal(keys[A], A, 4, PTYPE_RECORDS, encode_records(frame_records(4, 77))))
    view.refresh(force=True)
    assert view.fleet()["devices"][1]["heap_free"] == 77
    view.conn.close()
    conn.close()
