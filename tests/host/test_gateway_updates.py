"""The gateway's side of over-the-air updates (gateway/updates.py) on a real SQLite file:
what it sends after a device's frames as the node's OTA events come in, resuming after a
gateway restart, cancel, supersede; devices without an update get only their acks."""

from __future__ import annotations

import pytest

from tinysense.formats import ota
from tinysense.gateway import Gateway, Registry, Store, new_key, open_db
from tinysense.gateway.updates import CHUNKS_PER_FRAME, UpdateQueue
from tinysense.uplink import PTYPE_ACK, PTYPE_RECORDS, encode_records, open_frame, seal

DEV, OTHER = 0x51, 0x52
S = ota.STEP_CODES


def bundle(n: int = 3000) -> bytes:
    return ota.build_bundle(bytes(range(256)) * (n // 256), [(b"\1\2", b"\3")])


def events(uid: int, step: int = 0, at: int = -1) -> list[dict]:
    out = [{"type": "event", "code": ota.EV_OTA_ID, "t_ms": 1, "value": uid}]
    if step:
        out.append({"type": "event", "code": ota.EV_OTA_STEP, "t_ms": 1, "value": step})
    if at >= 0:
        out.append({"type": "event", "code": ota.EV_OTA_AT, "t_ms": 1, "value": at})
    return out


class Rig:
    def __init__(self, path):
        self.path = path
        self.conn = open_db(path)
        self.keys = {DEV: new_key(), OTHER: new_key()}
        for dev, key in self.keys.items():
            Registry(self.conn).set_key(dev, key)
        self.queue = UpdateQueue(self.conn)
        self.ctr = {DEV: 0, OTHER: 0}
        self.restart()

    def restart(self):
        self.gw = Gateway(Store(open_db(self.path)))

    def send(self, recs: list[dict], dev: int = DEV) -> list[tuple[int, bytes]]:
        """One uplink frame; the (ptype, payload) of every downlink after it but the ack."""
        frame = seal(self.keys[dev], dev, self.ctr[dev], PTYPE_RECORDS,
                     encode_records(recs or [{"type": "event", "code": 3, "t_ms": 0,
                                              "value": 0}]))
        self.ctr[dev] += 1
        self.gw.updates.refresh(force=True)
        out = []
        for ack in self.gw.handle_batch([(frame, "test")]):
            header, plain = open_frame(self.keys[dev], ack.frame)
            assert header.direction == 1 and header.device_id == dev
            if header.ptype != PTYPE_ACK:
                out.append((header.ptype, plain))
        return out


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path / "gw.db")


def test_offer_then_chunks_from_the_nodes_offset_then_done(rig):
    data = bundle()
    u = rig.queue.push(DEV, data, chunk=100, label="m")
    assert u.update_id == 1 and u.state == "pending"
    assert rig.send([], dev=OTHER) == []            # another device: acks only
    (ptype, offer), = rig.send([])                  # the node has not taken it: the offer
    assert ptype == ota.PTYPE_OFFER and ota.decode_offer(offer) == ota.decode_offer(
        ota.encode_offer(1, data, 100))
    assert len(rig.send([])) == 1                   # offered again until the node says so
    down = rig.send(events(1, S["offered"], 0))
    assert [ota.decode_chunk(p)[1] for _, p in down] == \
        [i * 100 for i in range(CHUNKS_PER_FRAME)]
    rig.restart()                                   # a gateway killed mid-update resumes
    down = rig.send(events(1, 0, 700))
    assert [ota.decode_chunk(p)[1] for _, p in down][0] == 700
    assert all(ota.decode_chunk(p)[2] == data[o:o + 100] for (_, p), o in
               zip(down, range(700, 1100, 100)))
    assert rig.send(events(1, S["received"]) + events(1, S["verified"])) == []
    assert rig.send(events(1, S["active"])) == []
    st = rig.queue.status(DEV)[0]
    assert st["active"]["update_id"] == 1 and not st["active"]["confirmed"]
    rig.send(events(1, S["confirmed"]))
    st = rig.queue.status(DEV)[0]
    assert st["active"]["confirmed"] and st["last"]["state"] == "done" and st["pending"] is None
    assert st["last"]["progress"] == 1.0


def test_failures_cancel_and_supersede(rig):
    rig.queue.push(DEV, bundle(), chunk=100)
    rig.send([])
    rig.send(events(1, S["offered"], 0))
    assert rig.queue.cancel(DEV).state == "cancelling"
    (ptype, payload), = rig.send([])
    assert ota.decode_offer(payload).action == ota.ACTION_CANCEL
    rig.send(events(1, S["cancelled"]))
    assert rig.queue.get(DEV, 1).state == "cancelled" and rig.send([]) == []
    # a newer push supersedes one still pending; the node's failure ends the newer one
    rig.queue.push(DEV, bundle(), chunk=100)
    u3 = rig.queue.push(DEV, bundle(1000), chunk=100)
    assert rig.queue.get(DEV, 2).state == "superseded" and u3.update_id == 3
    (ptype, offer), = rig.send([])
    assert ota.decode_offer(offer).update_id == 3
    rig.send(events(3, S["offered"], 0) + events(3, S["received"]) +
             events(3, S["selftest_failed"]))
    assert rig.queue.get(DEV, 3).state == "failed" and rig.send([]) == []
    assert rig.queue.status(DEV)[0]["last"]["step"] == "selftest_failed"
    # an update the node never took is cancelled at once
    rig.queue.push(DEV, bundle(), chunk=100)
    assert rig.queue.cancel(DEV).state == "cancelled"
    assert rig.queue.cancel(DEV) is None


def test_push_refuses_what_is_not_a_bundle(rig):
    with pytest.raises(ota.OtaFormatError):
        rig.queue.push(DEV, b"TSU1" + bytes(40))
    with pytest.raises(ValueError):
        rig.queue.push(DEV, bundle(), chunk=ota.MAX_CHUNK + 1)
    assert rig.queue.updates() == []


def test_cli_one_line_errors_and_status(rig, tmp_path, capsys):
    from tinysense.cli import main

    db = str(rig.path)
    tsu = tmp_path / "u.tsu"
    tsu.write_bytes(bundle())
    cases = [
        (["ota", "push", str(tsu), "--db", db], "give --device ID"),
        (["ota", "push", str(tsu), "--device", "0x99", "--db", db], "not in the registry"),
        (["ota", "push", str(tmp_path / "none.tflite"), "--device", "81", "--db", db],
         "provisioned before boards were recorded: give --board"),
        (["ota", "push", str(tmp_path / "none.tflite"), "--device", "81", "--db", db,
          "--board", "ESP32_GENERIC"], "no model at"),
        (["ota", "status", "--db", str(tmp_path / "absent.db")], "no gateway database"),
        (["ota", "cancel", "--device", "81", "--db", db], "has no update in progress"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    Registry(rig.conn).set_board(DEV, "ESP32_GENERIC")   # as provision records it
    Registry(rig.conn).set_board(OTHER, "ESP32_GENERIC_C3")
    assert main(["ota", "push", str(tsu), "--device", "81", "--device", "0x52", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "device 81: update 1 queued" in out and "for ESP32_GENERIC)" in out
    assert "device 82: update 1 queued" in out and "for ESP32_GENERIC_C3)" in out
    assert main(["ota", "status", "--device", "81", "--db", db]) == 0
    assert "in progress update 1 pending" in capsys.readouterr().out
