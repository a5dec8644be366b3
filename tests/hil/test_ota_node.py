"""tsnode.ota on the node itself (the virtual board in the main suite, the RV32 QEMU board in
make test's RV32 tier): the golden offer and chunks (tests/vectors/ota/) received, verified
(SHA-256 by the node's hashlib), unpacked, and switched to at boot after the bundle's
self-test ran on the node's engine; a bundle whose vectors are wrong never becomes active."""

from __future__ import annotations

import json
import os

import pytest

from conftest import REPO
from tinysense.formats import ota

pytestmark = pytest.mark.hil
VECTORS = REPO / "tests" / "vectors" / "ota"
RMTREE = """
import os
def _rm(p):
    for name, kind, *_ in os.ilistdir(p):
        q = p + '/' + name
        if kind == 0x4000:
            _rm(q)
        else:
            os.remove(q)
    os.rmdir(p)
try:
    _rm({root!r})
except OSError:
    pass
"""


@pytest.fixture
def root(node):
    path = "/ota-test-%s" % os.urandom(3).hex()
    node.mkdir(path)
    yield path
    node.exec(RMTREE.format(root=path), timeout=60)


def _feed(node, root, payloads) -> list[tuple[int, int]]:
    node.exec(f"from tsnode.ota import Receiver\n_r = Receiver({root!r})")
    for ptype, payload in payloads:
        node.exec(f"_r.handle({ptype}, {payload!r})", timeout=30)
    return [tuple(e) for e in node.eval("_r.events")]


def test_the_golden_update_on_the_node(node, root):
    doc = json.loads((VECTORS / "vectors.json").read_text())
    uid = doc["update_id"]
    payloads = [(ota.PTYPE_OFFER, bytes.fromhex(doc["offer"]))]
    payloads += [(ota.PTYPE_CHUNK, bytes.fromhex(c)) for c in doc["chunks"]]
    S = ota.STEP_CODES
    assert _feed(node, root, payloads) == [(uid, S["offered"]), (uid, S["received"]),
                                           (uid, S["verified"])]
    out = node.exec(f"from tsnode import ota\nprint(ota.boot({root!r}))\n"
                    f"print(ota.read_state({root!r})['result'])", timeout=120).splitlines()
    slot = f"{root}/ota/a"   # the first update goes to slot a; the bundle has meta and config
    assert out[0] == f"('{slot}/model.tsm', '{slot}/model.json', '{slot}/app.json')"
    assert out[1] == f"[{uid}, {S['active']}]"


def test_a_wrong_self_test_is_never_activated_on_the_node(node, root):
    parts = ota.parse_bundle((VECTORS / "hello_world.tsu").read_bytes())
    inp, out = parts.vectors[0]
    bad = ota.build_bundle(parts.package, [(inp, bytes([out[0] ^ 1]))] + parts.vectors[1:])
    payloads = [(ota.PTYPE_OFFER, ota.encode_offer(7, bad, 400))]
    payloads += [(ota.PTYPE_CHUNK, c) for c in ota.chunks(7, bad, 400)]
    assert _feed(node, root, payloads)[-1] == (7, ota.STEP_CODES["verified"])
    out = node.exec(f"from tsnode import ota\nprint(ota.boot({root!r}))\n"
                    f"print(ota.read_state({root!r})['result'])", timeout=120).splitlines()
    assert out == ["None", f"[7, {ota.STEP_CODES['selftest_failed']}]"]
