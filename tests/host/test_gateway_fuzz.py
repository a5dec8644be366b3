"""Fuzzing the gateway's parse/verify/ingest path: never a crash, never an accepted forgery.

`test_mutation_fuzz` throws 120,000 random and mutated frames (plus the legitimate ones,
shuffled and duplicated) at Gateway.handle_batch on an in-memory SQLite store and checks
every accepted frame against what was really sealed. The hypothesis tests add shrinking
on structured mutations. Seeds are fixed so a failure reproduces.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinysense.gateway import Gateway, Registry, Store, open_db
from tinysense.uplink import PTYPE_RECORDS, encode_records, seal

DEVICES = (1, 2, 0xDEADBEEF)
KEYS = {dev: bytes([dev & 0xFF]) * 15 + bytes([dev >> 24]) for dev in DEVICES}


def _plaintext(rng: random.Random, i: int) -> bytes:
    if i % 3 == 0:
        return rng.randbytes(rng.randrange(0, 64))  # authentic but undecodable is allowed
    recs = [{"type": "reading", "sensor": rng.randrange(256), "t_ms": rng.randrange(1 << 20),
             "values": [rng.randrange(-32768, 32768) for _ in range(rng.randrange(4))]}
            for _ in range(rng.randrange(1, 6))]
    return encode_records(recs, boot=rng.randrange(10))


def _gateway():
    conn = open_db(":memory:")
    reg = Registry(conn)
    for dev, key in KEYS.items():
        reg.set_key(dev, key)
    accepted = []
    gw = Gateway(Store(conn), on_frame=accepted.append)
    return gw, conn, accepted


def _legit(rng: random.Random, per_device: int):
    legit = {}  # frame bytes -> (device, counter, plaintext)
    for dev in DEVICES:
        for ctr in rng.sample(range(5000), per_device):
            pt = _plaintext(rng, ctr)
            legit[seal(KEYS[dev], dev, ctr, PTYPE_RECORDS, pt)] = (dev, ctr, pt)
    return legit


def _mutate(rng: random.Random, frame: bytes, pool: list[bytes]) -> bytes:
    f = bytearray(frame)
    op = rng.randrange(10)
    if op == 0:  # flip 1..3 bits anywhere
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(f) * 8)
            f[i // 8] ^= 1 << (i % 8)
    elif op == 1:  # overwrite a byte
        f[rng.randrange(len(f))] = rng.randrange(256)
    elif op == 2:  # truncate
        del f[rng.randrange(len(f)):]
    elif op == 3:  # extend
        f += rng.randbytes(rng.randrange(1, 40))
    elif op == 4:  # change the counter (reuse the tag with another nonce)
        struct.pack_into(">I", f, 6, rng.randrange(1 << 32))
    elif op == 5:  # move it to another device
        struct.pack_into(">I", f, 2, rng.choice(DEVICES + (rng.randrange(1 << 32),)))
    elif op == 6:  # header bytes: version, flags, type
        i = rng.choice((0, 1, 10))
        f[i] = rng.randrange(256)
    elif op == 7:  # splice the header of one frame onto the body of another
        other = rng.choice(pool)
        f = f[:11] + bytearray(other[11:])
    elif op == 8:  # swap the tag for another frame's tag
        other = rng.choice(pool)
        f[-8:] = other[-8:]
    else:  # random bytes behind a plausible header of a registered device
        f = bytearray(frame[:11]) + rng.randbytes(rng.randrange(8, 120))
    return bytes(f)


def test_mutation_fuzz():
    rng = random.Random(20261129)
    legit = _legit(rng, 300)
    pool = list(legit)
    gw, conn, accepted = _gateway()
    inputs: list[bytes] = []
    for _ in range(60_000):
        inputs.append(_mutate(rng, rng.choice(pool), pool))
    for _ in range(60_000):
        n = rng.choice((rng.randrange(0, 19), rng.randrange(19, 64), rng.randrange(0, 1100)))
        blob = bytearray(rng.randbytes(n))
        if n >= 11 and rng.random() < 0.7:  # make most of them reach the tag check
            struct.pack_into(">BBIIB", blob, 0, 1, 0, rng.choice(DEVICES),
                             rng.randrange(1 << 32), PTYPE_RECORDS)
        inputs.append(bytes(blob))
    inputs += pool + rng.sample(pool, 200)  # every legit frame, some twice
    rng.shuffle(inputs)
    assert len(inputs) >= 120_000

    for i in range(0, len(inputs), 500):
        gw.handle_batch([(f, "fuzz") for f in inputs[i:i + 500]])  # must not raise

    expected_new = {}
    for f in inputs:
        if f in legit:
            dev, ctr, pt = legit[f]
            expected_new[(dev, ctr)] = pt
    for a in accepted:
        assert (a.device_id, a.counter) in expected_new, f"forgery accepted: {a}"
    rows = conn.execute("SELECT device_id, counter, payload FROM frames").fetchall()
    assert {(d, c): bytes(p) for d, c, p in rows} == expected_new
    assert len(rows) == len(expected_new) == len(pool)
    assert gw.rejections["internal_error"] == 0
    assert gw.rejections["bad_tag"] > 10_000  # the fuzz really reached the crypto


LEGIT_ONE = seal(KEYS[1], 1, 42, PTYPE_RECORDS,
                 encode_records([{"type": "event", "code": 1, "t_ms": 5, "value": -1}]))


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1200))
def test_hypothesis_random_bytes(data):
    gw, conn, accepted = _gateway()
    assert gw.handle(data, "h") is None or data == LEGIT_ONE
    assert gw.rejections["internal_error"] == 0
    conn.close()


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(LEGIT_ONE) + 20), st.integers(0, 255)),
                min_size=1, max_size=6),
       st.integers(0, len(LEGIT_ONE) + 30))
def test_hypothesis_edits_of_a_valid_frame(edits, cut):
    f = bytearray(LEGIT_ONE)
    for pos, value in edits:
        if pos < len(f):
            f[pos] = value
        else:
            f.append(value)
    f = bytes(f[:cut]) if cut < len(f) else bytes(f)
    gw, conn, accepted = _gateway()
    ack = gw.handle(f, "h")
    if f == LEGIT_ONE:
        assert ack is not None
    else:
        assert ack is None and not accepted, "a modified frame was accepted"
    assert gw.rejections["internal_error"] == 0
    conn.close()
