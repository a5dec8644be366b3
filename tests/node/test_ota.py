"""Over-the-air updates on real MicroPython (the unix ports): tsnode.ota receives a bundle
offered and chunked by the host codec, verifies it, switches at boot after its self-test,
refuses what it must, rolls back, and survives SIGKILL at any point (docs/formats/ota.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, micropython_env, unix_kind_exe
from tinysense.formats import ota
from tinysense.paths import CONFORMANCE_DIR

pytestmark = pytest.mark.node
DRIVE = REPO / "tests" / "node" / "ota_mp" / "drive.py"
HELLO = CONFORMANCE_DIR / "tflm_hello_world_int8.tflite"
ACTIVITY = REPO / "models" / "activity"
# SIGKILLs in the power-cut test (about 7 s); `make soak-ota` runs more (TINYSENSE_OTA_CUTS)
CUTS = int(os.environ.get("TINYSENSE_OTA_CUTS", "100"))
S = ota.STEP_CODES


@pytest.fixture(scope="module")
def bundles():
    from tinysense.ota import make_bundle

    hello = make_bundle(HELLO, "ESP32_GENERIC", vectors=6)
    activity = make_bundle(ACTIVITY / "model.tflite", "ESP32_GENERIC",
                           meta=(ACTIVITY / "meta.json").read_bytes(),
                           config=b'{"heartbeat_s": 30}')
    parts = ota.parse_bundle(hello)
    inp, out = parts.vectors[2]
    wrong = [(inp, bytes([out[0] ^ 1]) + out[1:])] + parts.vectors[3:]
    return {"hello": hello, "activity": activity,
            "wrong_vectors": ota.build_bundle(parts.package, wrong)}


def stream(*payloads: tuple[int, bytes]) -> bytes:
    return b"".join(bytes([t]) + len(p).to_bytes(2, "big") + p for t, p in payloads)


def transfer(uid: int, bundle: bytes, chunk: int = 256, offer_data: bytes | None = None):
    """An offer then every chunk, in order."""
    out = [(ota.PTYPE_OFFER, ota.encode_offer(uid, offer_data or bundle, chunk))]
    out += [(ota.PTYPE_CHUNK, c) for c in ota.chunks(uid, bundle, chunk)]
    return out


class Node:
    """One node's flash directory, driven by drive.py on a unix port."""

    def __init__(self, exe: str, root: Path):
        self.exe, self.root = exe, root
        self.env = micropython_env()
        root.mkdir(exist_ok=True)

    def cmd(self, *args) -> list[str]:
        return [self.exe, str(DRIVE), str(self.root) + "/", *args]

    def run(self, *args) -> str:
        proc = subprocess.run(self.cmd(*args), capture_output=True, text=True, env=self.env,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def feed(self, tmp: Path, payloads) -> tuple[list[tuple[int, int]], int, dict]:
        f = tmp / "stream.bin"
        f.write_bytes(stream(*payloads))
        out = self.run("feed", str(f))
        events = [(int(a), int(b)) for _, a, b in
                  (line.split() for line in out.splitlines() if line.startswith("EV "))]
        have = [line.split(" ", 2) for line in out.splitlines() if line.startswith("HAVE ")][-1]
        return events, int(have[1]), json.loads(have[2])

    def boot(self, crashes: int = 0) -> tuple[list | None, list | None, str | None, int, bool]:
        out = self.run("boot", str(crashes))
        b = json.loads([x for x in out.splitlines() if x.startswith("BOOT ")][-1][5:])
        return b["paths"], b["result"], b["active"], b["trial"], "RUN " in out

    def state(self) -> dict:
        return json.loads((self.root / "ota" / "state.json").read_text())


@pytest.fixture(params=["x86", "x64"])
def node(request, tmp_path):
    return Node(unix_kind_exe(request.param), tmp_path / "flash")


def test_update_is_received_verified_switched_and_confirmed(node, bundles, tmp_path):
    data = bundles["activity"]
    events, have, stats = node.feed(tmp_path, transfer(7, data))
    assert events == [(7, S["offered"]), (7, S["received"]), (7, S["verified"])]
    assert have == 0 and stats["chunks"] == -(-len(data) // 256)   # the transfer is done
    slot = node.state()["pending"]["slot"]
    assert (node.root / "ota" / slot / "model.tsm").read_bytes() == \
        ota.parse_bundle(data).package
    assert json.loads((node.root / "ota" / slot / "app.json").read_text()) == \
        {"heartbeat_s": 30}
    paths, result, active, trial, ran = node.boot()
    assert result == [7, S["active"]] and active == slot and trial == 1 and ran
    assert paths[0].endswith(f"/ota/{slot}/model.tsm") and paths[2].endswith("app.json")
    assert node.run("healthy").split() == ["HEALTHY", "7"]
    paths, result, active, trial, ran = node.boot()
    assert result == [7, S["confirmed"]] and active == slot and trial == 0 and ran
    # the next update goes to the other slot and replaces this one
    events, _, _ = node.feed(tmp_path, transfer(8, bundles["hello"], chunk=64))
    assert events[-1] == (8, S["verified"])
    paths, result, active, trial, _ = node.boot()
    assert result == [8, S["active"]] and active != slot
    assert node.state()["prev"] == {"slot": slot, "id": 7,
                                    "sha": node.state()["prev"]["sha"]}


def test_refused_and_ignored_payloads(node, bundles, tmp_path):
    data = bundles["hello"]
    good = transfer(5, data, chunk=64)
    offer, chunks = good[0], good[1:]
    other = transfer(6, data, chunk=64)[1]   # a chunk of another update id
    bad = [
        (ota.PTYPE_OFFER, offer[1][:-1]),                 # short offer
        (ota.PTYPE_OFFER, b"\x02" + offer[1][1:]),        # another ota version
        (ota.PTYPE_CHUNK, chunks[0][1]),                  # a chunk before any offer
    ]
    events, have, stats = node.feed(tmp_path, bad + [offer, other, chunks[1], chunks[0],
                                                     chunks[0], chunks[1], chunks[2]])
    assert events == [(5, S["offered"])]
    assert have == 3 * 64 and stats["ignored"] == 4
    assert stats["out_of_order"] == 2   # chunk 1 before chunk 0, and chunk 0 again
    # a replayed (older or equal) offer cannot start a transfer again: no downgrade
    events, have, _ = node.feed(tmp_path, chunks[3:] + [transfer(4, data)[0]])
    assert events[-2:] == [(5, S["verified"]), (4, S["stale"])] and have == 0
    events, _, _ = node.feed(tmp_path, [offer])
    assert events == [(5, S["stale"])]


def test_a_bad_hash_restarts_and_a_failed_selftest_is_never_activated(node, bundles,
                                                                      tmp_path):
    data = bundles["hello"]
    wrong = transfer(3, data, chunk=64, offer_data=data[:-1] + bytes([data[-1] ^ 1]))
    events, have, _ = node.feed(tmp_path, wrong)
    assert events[-1] == (3, S["bad_hash"]) and have == 0   # same offer, from the start
    events, _, _ = node.feed(tmp_path, transfer(9, bundles["wrong_vectors"], chunk=64))
    assert events[-1] == (9, S["verified"])
    paths, result, active, trial, ran = node.boot()
    assert paths is None and result == [9, S["selftest_failed"]] and active is None
    assert not ran and node.state()["pending"] is None


def test_crash_loop_on_trial_rolls_back_and_cancel_drops(node, bundles, tmp_path):
    node.feed(tmp_path, transfer(2, bundles["hello"], chunk=64))
    assert node.boot()[1] == [2, S["active"]]
    for _ in range(3):   # boots on trial without a crash (power cuts): no rollback
        assert node.boot()[2] is not None
    for crashes in range(1, ota.TRIAL_CRASHES):
        assert node.boot(crashes)[2] is not None
    paths, result, active, trial, _ = node.boot(ota.TRIAL_CRASHES)
    assert result == [2, S["rolled_back"]] and active is None and paths is None
    # an app that hangs (a board's watchdog resets it; no crash is counted) rolls back too,
    # once the trial has seen TRIAL_BOOTS boots without the app's first heartbeat
    node.feed(tmp_path, transfer(5, bundles["hello"], chunk=64))
    assert node.boot()[1] == [5, S["active"]]          # trial boot 1
    for _ in range(ota.TRIAL_BOOTS - 1):
        assert node.boot()[2] is not None              # boots 2..TRIAL_BOOTS
    paths, result, active, trial, _ = node.boot()
    assert result == [5, S["rolled_back"]] and active is None
    # a cancel drops a transfer in progress, and a verified update waiting for the switch
    part = transfer(6, bundles["hello"], chunk=64)
    events, _, _ = node.feed(tmp_path, part[:3] + [(ota.PTYPE_OFFER, ota.encode_cancel(6))])
    assert events == [(6, S["offered"]), (6, S["cancelled"])]
    events, _, _ = node.feed(tmp_path, transfer(7, bundles["hello"], chunk=64) +
                             [(ota.PTYPE_OFFER, ota.encode_cancel(7))])
    assert events[-2:] == [(7, S["verified"]), (7, S["cancelled"])]
    assert node.boot()[0] is None and node.state()["pending"] is None


def _check_flash(root: Path, packages: dict[int, bytes]) -> None:
    """What a power cut may leave: state.json whole (or absent), the active slot holding
    exactly the package of the update the state names."""
    path = root / "ota" / "state.json"
    if not path.exists():
        return
    st = json.loads(path.read_text())
    if st["active"] is not None:
        got = (root / "ota" / st["active"] / "model.tsm").read_bytes()
        assert got == packages[st["active_id"]], f"slot {st['active']} after a cut"


@pytest.mark.slow
def test_power_cuts_during_transfer_verify_and_switch(bundles, tmp_path):
    """SIGKILL the node at random instants while it receives (each run is fed the whole
    transfer again, as a gateway resends from the node's offset), verifies and switches.
    After every cut: the state is whole and the active model loads. After the cuts the
    update completes and runs. Two updates in a row, so cuts also land between them."""
    rng = random.Random(1234)
    node = Node(unix_kind_exe("x86"), tmp_path / "flash")
    f = tmp_path / "stream.bin"
    cuts = runs = 0
    kinds = [(bundles["activity"], 256), (bundles["hello"], 64)]
    packages = {}
    uid = 10
    while cuts < CUTS:   # update after update, every run of each killed until it is active
        uid += 1
        data, chunk = kinds[uid % 2]
        packages[uid] = ota.parse_bundle(data).package
        f.write_bytes(stream(*transfer(uid, data, chunk)))
        limits = {}
        while True:
            st = node.state() if (node.root / "ota" / "state.json").exists() else {}
            if st.get("active_id") == uid:
                break
            receiving = st.get("last_id", 0) < uid or (node.root / "ota" / "offer.bin").exists()
            assert receiving or (st.get("pending") or {}).get("id") == uid, st
            mode = ("feed", str(f)) if receiving else ("boot",)
            if mode[0] not in limits:
                limits[mode[0]] = _duration(node, *mode)
            proc = subprocess.Popen(node.cmd(*mode), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=node.env)
            time.sleep(rng.uniform(0, limits[mode[0]]))
            if proc.poll() is None:   # still running: a cut
                proc.send_signal(signal.SIGKILL)
                cuts += 1
            proc.wait()
            runs += 1
            assert runs < 40 * CUTS, "no progress under the cuts"
            _check_flash(node.root, packages)
        paths, result, active, trial, ran = node.boot()
        assert ran and active is not None and node.state()["pending"] is None
        assert node.run("healthy").split() == ["HEALTHY", str(uid)]
    assert node.state()["trial"] == 0 and uid > 11


def _duration(node: Node, *args) -> float:
    """How long one run takes here, in s (on a copy of the node's flash): kills land in it."""
    import shutil

    probe = node.root.with_name(node.root.name + "-probe")
    shutil.rmtree(probe, ignore_errors=True)
    if node.root.exists():
        shutil.copytree(node.root, probe)
    t = time.monotonic()
    Node(node.exe, probe).run(*args)
    shutil.rmtree(probe, ignore_errors=True)
    return (time.monotonic() - t) * 1.2


def test_golden_vectors_on_the_node(node, tmp_path):
    """The spec's golden offer and chunks (tests/vectors/ota/) take the node to the switch."""
    doc = json.loads((REPO / "tests" / "vectors" / "ota" / "vectors.json").read_text())
    uid = doc["update_id"]
    payloads = [(ota.PTYPE_OFFER, bytes.fromhex(doc["offer"]))]
    payloads += [(ota.PTYPE_CHUNK, bytes.fromhex(c)) for c in doc["chunks"]]
    events, _, _ = node.feed(tmp_path, payloads)
    assert events == [(uid, S["offered"]), (uid, S["received"]), (uid, S["verified"])]
    paths, result, active, trial, ran = node.boot()
    assert result == [uid, S["active"]] and ran
    slot = node.root / "ota" / active
    assert json.loads((slot / "app.json").read_text()) == {"heartbeat_s": 60}
    assert json.loads((slot / "model.json").read_text())["name"] == "hello_world"
    events, _, _ = node.feed(tmp_path, [(ota.PTYPE_OFFER, bytes.fromhex(doc["cancel"]))])
    assert events == []   # nothing of that id is left to cancel: ignored
