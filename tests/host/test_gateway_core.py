"""Gateway ingest path on a real SQLite file: auth first, replay window, late frames, acks."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from tinysense.gateway import Gateway, Registry, Store, new_key, open_db
from tinysense.uplink import (
    PTYPE_ACK, PTYPE_RECORDS, FrameError, decode_ack, encode_records, open_frame, seal,
)

DEV = 0x2A
OTHER = 7


def records(i: int) -> bytes:
    return encode_records([{"type": "reading", "sensor": 1, "t_ms": 1000 + i,
                            "values": [i % 30000, -i % 30000]},
                           {"type": "inference", "model": 3, "t_ms": 1000 + i, "class": i % 5,
                            "confidence": 200}], boot=1)


class Rig:
    """A gateway on a real WAL SQLite file with two provisioned devices."""

    def __init__(self, path, **kw):
        self.path = path
        self.kw = kw
        self.conn = open_db(path)
        reg = Registry(self.conn)
        self.keys = {DEV: new_key(), OTHER: new_key()}
        for dev, key in self.keys.items():
            reg.set_key(dev, key)
        self.gw = Gateway(Store(self.conn), **kw)

    def frame(self, counter: int, dev: int = DEV, plaintext: bytes | None = None) -> bytes:
        pt = records(counter) if plaintext is None else plaintext
        return seal(self.keys[dev], dev, counter, PTYPE_RECORDS, pt)

    def acked(self, ack: bytes | None, dev: int = DEV) -> list[int]:
        assert ack is not None
        header, plaintext = open_frame(self.keys[dev], ack)
        assert (header.direction, header.device_id, header.ptype) == (1, dev, PTYPE_ACK)
        return decode_ack(plaintext)

    def stored(self, dev: int = DEV) -> list[int]:
        rows = self.conn.execute("SELECT counter FROM frames WHERE device_id=? ORDER BY counter",
                                 (dev,)).fetchall()
        return [r[0] for r in rows]

    def restart(self) -> None:
        """A new gateway process on the same file (windows rebuilt from the database)."""
        self.conn.close()
        self.conn = open_db(self.path)
        self.gw = Gateway(Store(self.conn), **self.kw)


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path / "gateway.db")
    yield r
    r.conn.close()


def test_accepts_stores_decodes_and_acks(rig):
    ack = rig.gw.handle(rig.frame(5), "test")
    assert rig.acked(ack) == [5]
    row = rig.conn.execute("SELECT ptype, payload, decoded, decode_error FROM frames").fetchone()
    assert row[0] == PTYPE_RECORDS and row[1] == records(5) and row[3] is None
    assert '"sensor":1' in row[2] and '"values":[5,29995]' in row[2]
    assert rig.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_duplicate_is_stored_once_but_acked_again(rig):
    f = rig.frame(1)
    assert rig.acked(rig.gw.handle(f, "a")) == [1]
    assert rig.acked(rig.gw.handle(f, "a")) == [1]  # lost ack: the node re-sends
    assert rig.stored() == [1]
    assert rig.gw.rejections["replay"] == 1


def test_ack_counters_never_repeat_across_restarts(rig):
    seen = []
    for round_ in range(3):
        for c in range(round_ * 10, round_ * 10 + 10):
            ack = rig.gw.handle(rig.frame(c), "a")
            seen.append(open_frame(rig.keys[DEV], ack)[0].counter)
        rig.restart()
    assert len(seen) == len(set(seen)) == 30
    assert seen == sorted(seen)


def test_reordered_and_late_frames_fill_gaps_once(rig):
    order = [10, 3, 7, 11, 4, 9, 8, 5, 6, 2, 1, 0]
    frames = {c: rig.frame(c) for c in order}
    for c in order:
        assert rig.acked(rig.gw.handle(frames[c], "a")) == [c]
    for c in order:  # every one of them again: all replays
        assert rig.gw.handle(frames[c], "a") is not None
    assert rig.stored() == sorted(order)
    assert rig.gw.rejections["replay"] == len(order)


def test_frames_far_below_the_window_use_the_database(rig):
    rig.gw.handle(rig.frame(5000), "a")
    late = rig.frame(3)  # 4997 counters behind: below the 1024-bit window
    assert rig.acked(rig.gw.handle(late, "a")) == [3]
    assert rig.gw.handle(late, "a") is not None
    assert rig.stored() == [3, 5000]
    assert rig.gw.rejections["replay"] == 1


def test_max_age_rejects_too_old(tmp_path):
    rig = Rig(tmp_path / "g.db", max_age=100)
    rig.gw.handle(rig.frame(1000), "a")
    assert rig.gw.handle(rig.frame(850), "a") is None
    assert rig.gw.handle(rig.frame(950), "a") is not None
    assert rig.gw.rejections["too_old"] == 1
    assert rig.stored() == [950, 1000]


def test_replay_after_restart_is_rejected_and_gaps_still_fill(rig):
    frames = {c: rig.frame(c) for c in range(0, 40)}
    for c in range(0, 40, 2):
        rig.gw.handle(frames[c], "a")
    rig.restart()
    for c in range(0, 40, 2):
        assert rig.acked(rig.gw.handle(frames[c], "a")) == [c]  # re-acked, not stored again
    for c in range(1, 40, 2):
        assert rig.acked(rig.gw.handle(frames[c], "a")) == [c]
    assert rig.stored() == list(range(40))
    assert rig.gw.rejections["replay"] == 20


def test_batch_with_duplicates_and_two_devices(rig):
    a = [rig.frame(c) for c in range(5)]
    b = [rig.frame(c, dev=OTHER) for c in range(3)]
    items = [(f, "udp:1") for f in a + a[:2]] + [(f, "udp:2") for f in b]
    acks = rig.gw.handle_batch(items)
    by_dev = {ack.device_id: rig.acked(ack.frame, ack.device_id) for ack in acks}
    assert by_dev == {DEV: [0, 1, 2, 3, 4], OTHER: [0, 1, 2]}
    assert rig.stored() == [0, 1, 2, 3, 4] and rig.stored(OTHER) == [0, 1, 2]


def test_every_single_bit_flip_is_rejected(rig):
    good = rig.frame(77)
    for bit in range(len(good) * 8):
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert rig.gw.handle(bytes(bad), "flip") is None, f"bit {bit} flipped was accepted"
    assert rig.stored() == []
    rej = rig.gw.rejections
    assert rej["bad_tag"] > 0 and sum(rej.values()) == len(good) * 8
    assert rig.acked(rig.gw.handle(good, "a")) == [77]  # the window was not poisoned


def test_truncated_extended_and_spliced_frames_are_rejected(rig):
    good = rig.frame(9)
    for n in range(len(good)):
        assert rig.gw.handle(good[:n], "t") is None
    for extra in (b"\0", b"\0" * 8, good[-8:]):
        assert rig.gw.handle(good + extra, "t") is None
    other = rig.frame(9, dev=OTHER)
    assert rig.gw.handle(good[:11] + other[11:], "t") is None  # another device's body
    assert rig.gw.handle(b"\x01" + b"\0" * 2000, "t") is None
    assert rig.gw.rejections["truncated"] == 19 and rig.gw.rejections["oversized"] == 1
    assert rig.stored() == [] and rig.stored(OTHER) == []


def test_unknown_device_wrong_key_reflected_ack_and_bad_type(rig):
    stranger = seal(new_key(), 999, 1, PTYPE_RECORDS, records(1))
    assert rig.gw.handle(stranger, "x") is None
    wrong_key = seal(rig.keys[OTHER], DEV, 1, PTYPE_RECORDS, records(1))
    assert rig.gw.handle(wrong_key, "x") is None
    ack = rig.gw.handle(rig.frame(1), "x")
    assert rig.gw.handle(ack, "x") is None  # our own ack sent back: direction 1
    up_ack = seal(rig.keys[DEV], DEV, 2, PTYPE_ACK, b"\x01\x00")
    assert rig.gw.handle(up_ack, "x") is None
    assert dict(rig.gw.rejections) == {"unknown_device": 1, "bad_tag": 1,
                                       "wrong_direction": 1, "bad_type": 1}
    assert rig.stored() == [1]


def test_undecodable_authentic_payload_is_kept_raw_and_acked(rig):
    f = rig.frame(3, plaintext=b"\x09garbage")
    assert rig.acked(rig.gw.handle(f, "x")) == [3]
    row = rig.conn.execute("SELECT payload, decoded, decode_error FROM frames").fetchone()
    assert row[0] == b"\x09garbage" and row[1] is None and row[2]
    assert rig.gw.rejections["malformed_payload"] == 1


def test_rejection_counts_are_persisted(rig):
    rig.gw.handle(b"junk", "x")
    rig.gw.handle(rig.frame(1), "x")  # the commit carries the pending counts
    rig.gw.handle(b"\x02" + b"\0" * 30, "x")
    rig.gw.flush()
    assert Store(rig.conn).rejection_counts() == {"truncated": 1, "bad_version": 1}


def test_failed_commit_sends_no_ack_and_forgets_the_window(rig):
    rig.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON frames WHEN NEW.counter = 13 "
                     "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    f12, f13 = rig.frame(12), rig.frame(13)
    assert rig.gw.handle_batch([(f12, "a"), (f13, "a")]) == []
    assert not rig.gw.last_commit_ok and rig.stored() == []
    rig.conn.execute("DROP TRIGGER boom")
    acks = rig.gw.handle_batch([(f12, "a"), (f13, "a")])  # the node re-sends both
    assert [rig.acked(a.frame) for a in acks] == [[12, 13]]
    assert rig.stored() == [12, 13]


def test_key_rotation_while_running(rig):
    assert rig.gw.handle(rig.frame(0), "a") is not None
    old = rig.keys[DEV]
    new = new_key()
    other_conn = sqlite3.connect(rig.path)  # provisioning runs in another process
    Registry(other_conn).set_key(DEV, new, rotate=True)
    other_conn.close()
    rig.gw.keys.refresh_s = 0  # do not wait a second for the re-read
    rig.keys[DEV] = new
    assert rig.acked(rig.gw.handle(rig.frame(0), "a")) == [0]  # counter restarts, key v2
    assert rig.gw.handle(seal(old, DEV, 1, PTYPE_RECORDS, records(1)), "a") is None
    rows = rig.conn.execute("SELECT key_version, counter FROM frames ORDER BY key_version")
    assert rows.fetchall() == [(1, 0), (2, 0)]


def test_removed_then_reprovisioned_device_is_stored_again(rig):
    """`devices remove` then `provision` of the same id: the node starts again at counter 0
    under its new key; the registry must give a key version no stored frame has, else
    those frames are taken for duplicates (acked, never stored)."""
    for c in range(3):
        assert rig.acked(rig.gw.handle(rig.frame(c), "a")) == [c]
    other_conn = sqlite3.connect(rig.path)  # another process: devices remove, provision
    assert Registry(other_conn).remove(DEV)
    other_conn.commit()
    new = new_key()
    assert Registry(other_conn).set_key(DEV, new).key_version == 2
    other_conn.close()
    rig.gw.keys.refresh_s = 0
    rig.keys[DEV] = new
    for c in range(2):
        assert rig.acked(rig.gw.handle(rig.frame(c), "a")) == [c]
    rows = rig.conn.execute("SELECT key_version, counter FROM frames ORDER BY key_version, "
                            "counter").fetchall()
    assert rows == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]


def test_keys_never_reach_logs_or_reprs(rig, caplog):
    caplog.set_level(logging.DEBUG, logger="tinysense")
    rig.gw.handle(rig.frame(1), "a")
    rig.gw.handle(rig.frame(1), "a")
    bad = bytearray(rig.frame(2))
    bad[-1] ^= 1
    rig.gw.handle(bytes(bad), "a")
    text = caplog.text + repr(rig.gw.registry.lookup(DEV)) + repr(rig.gw.keys.get(DEV))
    assert "rejected bad_tag" in caplog.text
    for key in rig.keys.values():
        assert key.hex() not in text.lower() and repr(key) not in text


def test_non_bytes_input_is_counted_not_raised(rig):
    for junk in (None, 5, "text", b"", bytearray(19), memoryview(b"\x01" * 30)):
        assert rig.gw.handle(junk, "x") is None
    assert sum(rig.gw.rejections.values()) == 6


def test_open_db_refuses_non_sqlite_file(tmp_path):
    from tinysense.errors import TinysenseError
    p = tmp_path / "not.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TinysenseError, match="gateway database"):
        open_db(p)


def test_open_frame_still_checks_the_codec_contract(rig):
    with pytest.raises(FrameError) as exc:
        open_frame(rig.keys[DEV], rig.frame(1)[:-1] + b"\0")
    assert exc.value.reason == "bad_tag"


def test_decoder_crash_keeps_the_frame_raw(rig, monkeypatch):
    import tinysense.gateway.core as core

    def broken(plaintext):
        raise TypeError("decoder bug")

    monkeypatch.setattr(core, "records_json", broken)  # the fast path and the strict one
    monkeypatch.setattr(core, "decode_batch", broken)
    assert rig.acked(rig.gw.handle(rig.frame(4), "x")) == [4]
    row = rig.conn.execute("SELECT decoded, decode_error FROM frames").fetchone()
    assert row[0] is None and "TypeError: decoder bug" in row[1]


def test_internal_error_does_not_mark_the_counter(rig, monkeypatch):
    """A frame that fails inside the gateway is not stored, not acked, and NOT remembered
    as seen: the node's re-send must be stored, not taken for a duplicate."""
    import tinysense.gateway.core as core

    real = core.decode_to_json

    def explode(plaintext):
        raise RuntimeError("gateway bug")

    monkeypatch.setattr(core, "decode_to_json", explode)
    f = rig.frame(8)
    assert rig.gw.handle(f, "x") is None
    assert rig.gw.rejections["internal_error"] == 1
    monkeypatch.setattr(core, "decode_to_json", real)
    assert rig.acked(rig.gw.handle(f, "x")) == [8]
    assert rig.stored() == [8] and rig.gw.rejections["replay"] == 0


def test_device_provisioned_while_running_is_picked_up(rig):
    key = new_key()
    f = seal(key, 0x99, 0, PTYPE_RECORDS, records(0))
    assert rig.gw.handle(f, "x") is None
    other_conn = sqlite3.connect(rig.path)
    Registry(other_conn).set_key(0x99, key)
    other_conn.close()
    assert rig.gw.handle(f, "x") is None  # the negative answer is cached for a second
    rig.gw.keys.refresh_s = 0
    assert rig.gw.handle(f, "x") is not None
    assert rig.gw.rejections["unknown_device"] == 2


def test_database_is_private_and_sync_modes(tmp_path):
    import os
    import stat

    from tinysense.errors import TinysenseError

    conn = open_db(tmp_path / "full.db")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    Registry(conn).set_key(1, new_key())
    for name in ("full.db", "full.db-wal"):  # the WAL holds key pages too
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    conn.close()
    conn = open_db(tmp_path / "normal.db", synchronous="normal")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    conn.close()
    with pytest.raises(TinysenseError, match="synchronous"):
        open_db(tmp_path / "x.db", synchronous="off")


def test_since_queries_survive_a_clock_going_backwards(tmp_path):
    times = iter([100.0, 200.0, 150.0, 300.0])
    rig = Rig(tmp_path / "g.db", clock=lambda: next(times))
    for c in range(4):
        rig.gw.handle_batch([(rig.frame(c), "a"), (rig.frame(c + 10), "a")])
    store = Store(rig.conn)

    def since(t):
        return sorted((f.received_at, f.counter) for f in store.frames(since=t))

    assert since(160) == [(200.0, 1), (200.0, 11), (300.0, 3), (300.0, 13)]
    assert since(120) == [(150.0, 2), (150.0, 12), (200.0, 1), (200.0, 11), (300.0, 3),
                          (300.0, 13)]
    assert since(301) == [] and len(since(0)) == 8
    assert [f.counter for f in store.frames()] == [0, 10, 1, 11, 2, 12, 3, 13]  # arrival


def test_growing_dropped_total_is_reported(rig, caplog):
    caplog.set_level(logging.WARNING, logger="tinysense.gateway")

    def batch(c, dropped):
        return rig.frame(c, plaintext=encode_records(
            [{"type": "event", "code": 1, "t_ms": c, "value": c}], dropped_total=dropped))

    for c, dropped in ((0, 2), (1, 2), (3, 5), (2, 2)):  # frame 2 arrives late
        rig.gw.handle(batch(c, dropped), "x")
    assert rig.gw.stats["node_dropped"] == 3
    assert "device 0000002a dropped 3 frame(s) from its full queue (5 in total)" in caplog.text
    assert caplog.text.count("dropped") == 1


def test_non_finite_floats_give_strict_json_and_keep_the_raw_bits(rig):
    pt = encode_records([{"type": "reading", "sensor": 3, "t_ms": 1,
                          "values": [1.5, float("nan"), float("inf")]}])
    assert rig.acked(rig.gw.handle(rig.frame(1, plaintext=pt), "x")) == [1]
    decoded, payload = rig.conn.execute("SELECT decoded, payload FROM frames").fetchone()
    assert '"values":[1.5,null,null]' in decoded
    assert rig.conn.execute("SELECT json_valid(decoded) FROM frames").fetchone()[0] == 1
    assert bytes(payload) == pt


def test_exhausted_ack_counter_still_stores_and_spares_other_devices(rig):
    rig.conn.execute("INSERT INTO downlink(device_id, key_version, reserved_until) "
                     "VALUES(?, 1, ?)", (DEV, 1 << 32))
    rig.restart()
    acks = rig.gw.handle_batch([(rig.frame(1), "a"), (rig.frame(1, dev=OTHER), "b")])
    assert [a.device_id for a in acks] == [OTHER]
    assert rig.stored() == [1] and rig.stored(OTHER) == [1]
    assert rig.gw.last_commit_ok


def test_window_rebuilt_from_a_deep_history(rig):
    rig.gw.handle_batch([(rig.frame(c), "a") for c in range(0, 3000, 2)])
    rig.restart()
    top, bits = rig.gw.replay.state(DEV, 1) or (None, None)
    assert top is None  # windows load lazily
    assert rig.gw.handle(rig.frame(2998), "a") is not None  # replay: acked, not stored
    top, bits = rig.gw.replay.state(DEV, 1)
    assert top == 2998 and bits == int("01" * 512, 2)  # every other counter, 1024 bits
    assert rig.gw.handle(rig.frame(2997), "a") is not None
    assert rig.gw.handle(rig.frame(1), "a") is not None  # below the window: the database
    assert len(rig.stored()) == 1500 + 2 and rig.gw.rejections["replay"] == 1


def test_bytes_like_frames_are_accepted_like_bytes(rig):
    class Frame(bytes):
        pass

    assert rig.acked(rig.gw.handle(Frame(rig.frame(1)), "a")) == [1]
    assert rig.acked(rig.gw.handle(bytearray(rig.frame(2)), "a")) == [2]
    assert rig.acked(rig.gw.handle(memoryview(rig.frame(3)), "a")) == [3]
    assert rig.stored() == [1, 2, 3] and not rig.gw.rejections


def test_rejections_per_registered_device(tmp_path):
    rig = Rig(tmp_path / "g.db")
    rig.gw.handle(rig.frame(1))
    rig.gw.handle(rig.frame(1))                                   # replay of DEV
    rig.gw.handle(seal(new_key(), DEV, 2, PTYPE_RECORDS, records(2)))   # bad_tag of DEV
    rig.gw.handle(seal(new_key(), 999, 1, PTYPE_RECORDS, records(1)))   # unknown_device
    rig.gw.handle(b"\x01")                                       # truncated: no device
    rig.gw.handle(rig.frame(3, dev=OTHER))   # a commit: the counts are written with it
    rows = rig.conn.execute("SELECT device_id, reason, count FROM device_rejections "
                            "ORDER BY device_id, reason").fetchall()
    assert rows == [(DEV, "bad_tag", 1), (DEV, "replay", 1)]   # forged ids never get a row
    assert Store(rig.conn).rejection_counts() == {"bad_tag": 1, "replay": 1, "truncated": 1,
                                                  "unknown_device": 1}
