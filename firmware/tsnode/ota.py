"""Over-the-air updates on the node: take an update bundle from sealed downlink frames,
verify it, switch to it at boot after its self-test, roll back a model the app cannot run.

Spec: docs/formats/ota.md (the host twin is host/tinysense/formats/ota.py). Offers and
chunks reach `Receiver.handle(ptype, payload)` only after the frame's tag, direction and
device id were checked (tsnode.uplink.sender). Nothing here holds the bundle in RAM: chunks
are appended to a file, hashed and copied through one small buffer.

    r = Receiver()                      # resumes a transfer cut by a reset or power loss
    r.handle(ptype, payload)            # each authenticated offer (3) or chunk (4)
    r.events                            # [(update id, step)] to report, oldest first
    paths = boot()                      # at boot: switch / roll back; the active model's files
    healthy()                           # the app ran a heartbeat on trial: keep this model
"""

import json
import os
import struct

from micropython import const

from tsnode.uplink.frame import PTYPE_CHUNK, PTYPE_OFFER
from tsnode.uplink.fsutil import crc32, exists, join, remove, write_atomic

_OTA_VERSION = const(1)
_ACT_OFFER = const(1)
_ACT_CANCEL = const(2)
OFFER_LEN = const(44)
CHUNK_HEADER = const(9)
MIN_CHUNK = const(16)
MAX_CHUNK = const(1000)
MAX_BUNDLE = const(4194304)
BUNDLE_HEADER = const(32)
BUNDLE_MAGIC = const(b"TSU1")
MAX_VECTORS = const(64)
# crashes in a row on trial (tsnode.supervise's count) that roll an update back: below
# supervise's 3, after which it stops in the REPL. Power cuts are not crashes.
TRIAL_CRASHES = const(2)
# boots on trial without the app's first heartbeat (healthy()) that roll it back too: an app
# that hangs is reset by a board's watchdog without crashing. Power cuts count here, so this
# is well above what a few cuts in the first minute would reach.
TRIAL_BOOTS = const(6)
STATE_VERSION = const(1)

# steps reported in OTA_STEP events (docs/formats/ota.md; the host reads the names)
STEP_OFFERED = const(1)
STEP_RECEIVED = const(2)
STEP_VERIFIED = const(3)
STEP_ACTIVE = const(4)
STEP_CONFIRMED = const(5)
STEP_CANCELLED = const(6)
STEP_STALE = const(-1)
STEP_BAD_HASH = const(-2)
STEP_BAD_BUNDLE = const(-3)
STEP_SELFTEST_FAILED = const(-4)
STEP_ROLLED_BACK = const(-5)
STEP_TOO_BIG = const(-6)

_OFFER_FMT = const(">BBII32sH")
_CHUNK_FMT = const(">BII")
_BUNDLE_FMT = const("<4sIIIIHHII")
_IO = const(512)  # bytes per read when hashing and copying


class BundleError(ValueError):
    pass


def _dir(root):
    return join(root, "ota")


def read_state(root="/"):
    """The switch state (docs/formats/ota.md); a fresh one when there is none."""
    try:
        with open(join(_dir(root), "state.json")) as f:
            st = json.load(f)
        if st.get("v") == STATE_VERSION:
            return st
    except (OSError, ValueError):
        pass
    return {"v": STATE_VERSION, "last_id": 0, "active": None, "active_id": 0,
            "active_sha": "", "prev": None, "pending": None, "trial": 0, "result": None}


def write_state(st, root="/"):
    write_atomic(join(_dir(root), "state.json"), json.dumps(st))


def _mkdirs(root):
    d = _dir(root)
    for p in (d, d + "/a", d + "/b"):
        if not exists(p):
            os.mkdir(p)


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _hex(b):
    return "".join("%02x" % x for x in b)


class Receiver:
    """Takes one update at a time into /ota/recv.tsu; see docs/formats/ota.md, "Receive"."""

    def __init__(self, root="/", kernels="auto"):
        self.root = root
        self.kernels = kernels
        _mkdirs(root)
        d = _dir(root)
        self._offer_path = d + "/offer.bin"
        self._recv = d + "/recv.tsu"
        self.events = []
        self.stats = {"ignored": 0, "out_of_order": 0, "chunks": 0}
        self.offer = self._read_offer()  # (id, length, sha256, chunk) or None
        self.have = 0
        if self.offer is not None:
            st = read_state(root)
            if st["last_id"] < self.offer[0]:  # a cut between offer.bin and the state
                st["last_id"] = self.offer[0]
                write_state(st, root)
            pend = st["pending"]
            if pend is not None and pend["id"] == self.offer[0]:
                self._drop_transfer()  # a cut after the switch state was written
            else:
                self.have = max(0, _size(self._recv))
                if self.have > self.offer[1]:
                    self._restart()
                elif self.have == self.offer[1]:
                    self._verify()  # a cut between the last chunk and the verdict

    # --- persistence -------------------------------------------------------------------

    def _read_offer(self):
        try:
            with open(self._offer_path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if len(data) != OFFER_LEN + 4 or struct.unpack("<I", data[OFFER_LEN:])[0] != \
                crc32(data[:OFFER_LEN]):
            remove(self._offer_path)
            return None
        _v, _a, uid, length, sha, chunk = struct.unpack(_OFFER_FMT, data)
        return uid, length, sha, chunk

    def _drop_transfer(self):
        remove(self._recv)
        remove(self._offer_path)
        self.offer = None
        self.have = 0

    def _restart(self):
        with open(self._recv, "wb"):
            pass
        self.have = 0

    def _report(self, uid, step):
        self.events.append((uid, step))

    # --- frames ------------------------------------------------------------------------

    def handle(self, ptype, payload):
        """One authenticated downlink payload of type 3 (offer) or 4 (chunk)."""
        if ptype == PTYPE_OFFER:
            self._on_offer(payload)
        elif ptype == PTYPE_CHUNK:
            self._on_chunk(payload)
        else:
            self.stats["ignored"] += 1

    def _on_offer(self, p):
        if len(p) != OFFER_LEN or p[0] != _OTA_VERSION:
            self.stats["ignored"] += 1
            return
        _v, action, uid, length, sha, chunk = struct.unpack(_OFFER_FMT, p)
        st = read_state(self.root)
        if action == _ACT_CANCEL:
            pend = st["pending"]
            if self.offer is not None and self.offer[0] == uid:
                self._drop_transfer()
                self._report(uid, STEP_CANCELLED)
            elif pend is not None and pend["id"] == uid:
                st["pending"] = None
                st["result"] = [uid, STEP_CANCELLED]
                write_state(st, self.root)
                self._report(uid, STEP_CANCELLED)
            else:
                self.stats["ignored"] += 1
            return
        if action != _ACT_OFFER or not (0 < uid and BUNDLE_HEADER <= length <= MAX_BUNDLE
                                        and MIN_CHUNK <= chunk <= MAX_CHUNK):
            self.stats["ignored"] += 1
            return
        if self.offer is not None and self.offer[0] == uid:
            self._report(uid, STEP_OFFERED)  # the gateway did not hear it: say it again
            return
        if uid <= st["last_id"]:
            self._report(uid, STEP_STALE)
            return
        if not self._fits(length):
            self._report(uid, STEP_TOO_BIG)
            return
        # the offer first, then last_id: a cut between the two resumes this offer (and
        # __init__ raises last_id); the other order would lose the update as "stale"
        self._restart()  # empty before the new offer: old bytes never count for it
        write_atomic(self._offer_path, bytes(p) + struct.pack("<I", crc32(p)))
        self.offer = (uid, length, bytes(sha), chunk)
        st["last_id"] = uid
        write_state(st, self.root)
        self._report(uid, STEP_OFFERED)

    def _fits(self, length):
        """Room for the bundle and, after it, its unpacked parts (about the same again)."""
        try:
            s = os.statvfs(_dir(self.root))
        except (OSError, AttributeError):
            return True
        return s[0] * s[4] > 2 * length + 8192

    def _on_chunk(self, p):
        if self.offer is None or len(p) <= CHUNK_HEADER or p[0] != _OTA_VERSION:
            self.stats["ignored"] += 1
            return
        _v, uid, off = struct.unpack_from(_CHUNK_FMT, p, 0)
        uid0, length, _sha, chunk = self.offer
        if uid != uid0:
            self.stats["ignored"] += 1
            return
        n = len(p) - CHUNK_HEADER
        if off != self.have or n != min(chunk, length - off):
            self.stats["out_of_order"] += 1
            return
        with open(self._recv, "ab") as f:
            f.write(memoryview(p)[CHUNK_HEADER:])
        self.have += n
        self.stats["chunks"] += 1
        if self.have == length:
            self._report(uid, STEP_RECEIVED)
            self._verify()

    # --- verify and unpack -------------------------------------------------------------

    def _verify(self):
        import hashlib

        uid, length, sha, _chunk = self.offer
        h = hashlib.sha256()
        buf = bytearray(_IO)
        n = 0
        with open(self._recv, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(memoryview(buf)[:k])
                n += k
        if n != length or h.digest() != sha:
            self._report(uid, STEP_BAD_HASH)
            self._restart()  # same offer, from the start
            return
        st = read_state(self.root)
        slot = "b" if st["active"] == "a" else "a"
        try:
            self._unpack(slot)
        except (BundleError, OSError):
            self._report(uid, STEP_BAD_BUNDLE)
            st["result"] = [uid, STEP_BAD_BUNDLE]
            write_state(st, self.root)
            self._drop_transfer()
            return
        if st["prev"] is not None and st["prev"]["slot"] == slot:
            st["prev"] = None  # that slot now holds the new bundle: roll back to the base
        st["pending"] = {"slot": slot, "id": uid, "sha": _hex(sha)}
        st["result"] = [uid, STEP_VERIFIED]
        write_state(st, self.root)
        self._drop_transfer()
        self._report(uid, STEP_VERIFIED)

    def _unpack(self, slot):
        """Check the bundle header against its length; copy its parts into the slot."""
        with open(self._recv, "rb") as f:
            head = f.read(BUNDLE_HEADER)
            if len(head) != BUNDLE_HEADER:
                raise BundleError("short")
            magic, total, p, m, c, v, res, i, o = struct.unpack(_BUNDLE_FMT, head)
            if magic != BUNDLE_MAGIC or res != 0 or not 1 <= v <= MAX_VECTORS:
                raise BundleError("header")
            if p < 64 or i < 1 or o < 1 or total != self.offer[1] or \
                    total != BUNDLE_HEADER + ((p + 3) & ~3) + v * (i + o) + m + c:
                raise BundleError("sizes")
            d = _dir(self.root) + "/" + slot
            for name in ("model.tsm", "model.json", "app.json", "vectors.bin"):
                remove(d + "/" + name)
            buf = bytearray(_IO)
            _copy(f, d + "/model.tsm", p, buf)
            f.seek(BUNDLE_HEADER + ((p + 3) & ~3))
            with open(d + "/vectors.bin", "wb") as out:
                out.write(struct.pack("<III", v, i, o))
            _copy(f, d + "/vectors.bin", v * (i + o), buf, "ab")
            if m:
                _copy(f, d + "/model.json", m, buf)
            if c:
                _copy(f, d + "/app.json", c, buf)
        from tsnode.engine.loader import read_tables

        with open(d + "/model.tsm", "rb") as f:
            try:
                read_tables(f)  # the package's own checks (CRC, sizes) before it is pending
            except ValueError:
                raise BundleError("package")


def _copy(src, path, n, buf, mode="wb"):
    mv = memoryview(buf)
    with open(path, mode) as out:
        while n > 0:
            k = src.readinto(mv[:min(n, len(buf))])
            if not k:
                raise BundleError("truncated")
            out.write(mv[:k])
            n -= k


# --- at boot ---------------------------------------------------------------------------

def selftest(slot_dir, kernels="auto"):
    """True when the slot's package gives every output byte of its vectors."""
    from tsnode.engine.model import open_streaming

    model = open_streaming(slot_dir + "/model.tsm", kernels)
    try:
        with open(slot_dir + "/vectors.bin", "rb") as f:
            v, i, o = struct.unpack("<III", f.read(12))
            if i != model.input_bytes():
                return False
            inp = bytearray(i)
            want = bytearray(o)
            for _ in range(v):
                if f.readinto(inp) != i or f.readinto(want) != o:
                    return False
                model.set_inputs(inp)
                model.run()
                if model.output_bytes() != want:
                    return False
        return True
    finally:
        if model.file is not None:
            model.file.close()


def boot(root="/", kernels="auto", crashes=0):
    """Run a due rollback or a pending switch; return the active model's files as
    (model.tsm, model.json or None, app.json or None), or None for the base model (what
    /app.json names). Called once per boot, before the app loads its model, with
    `crashes` = the app's crashes in a row so far (tsnode.supervise.crashes_in_a_row())."""
    try:
        st = read_state(root)
    except Exception:  # never keep the app from starting
        return None
    if st["active"] is None and st["pending"] is None:
        return None
    d = _dir(root)
    changed = False
    if st["trial"]:
        st["trial"] += 1  # boots on trial (a power cut counts here, but does not roll back)
        changed = True
        if crashes - st.get("crashes0", 0) >= TRIAL_CRASHES or st["trial"] > TRIAL_BOOTS:
            bad = st["active_id"]
            prev = st["prev"]
            st["active"] = prev["slot"] if prev else None
            st["active_id"] = prev["id"] if prev else 0
            st["active_sha"] = prev["sha"] if prev else ""
            st["prev"] = None
            st["trial"] = 0
            st["result"] = [bad, STEP_ROLLED_BACK]
    pend = st["pending"]
    if pend is not None:
        try:
            ok = selftest(d + "/" + pend["slot"], kernels)
        except Exception:  # a package that does not load fails its self-test
            ok = False
        if ok:
            if st["active"] is not None:
                st["prev"] = {"slot": st["active"], "id": st["active_id"],
                              "sha": st["active_sha"]}
            else:
                st["prev"] = None
            st["active"] = pend["slot"]
            st["active_id"] = pend["id"]
            st["active_sha"] = pend["sha"]
            st["trial"] = 1
            st["crashes0"] = crashes  # the old model's crashes do not count against this one
            st["result"] = [pend["id"], STEP_ACTIVE]
        else:
            st["result"] = [pend["id"], STEP_SELFTEST_FAILED]
        st["pending"] = None
        changed = True
    if changed:
        write_state(st, root)  # the one atomic switch
    if st["active"] is None:
        return None
    s = d + "/" + st["active"]
    return (s + "/model.tsm", s + "/model.json" if exists(s + "/model.json") else None,
            s + "/app.json" if exists(s + "/app.json") else None)


def healthy(root="/"):
    """The app ran its first heartbeat on this model: end the trial. Returns the update id
    confirmed, or 0 when there was no trial."""
    st = read_state(root)
    if not st["trial"]:
        return 0
    st["trial"] = 0
    st["prev"] = None
    st["result"] = [st["active_id"], STEP_CONFIRMED]
    write_state(st, root)
    return st["active_id"]


# --- in the app (tsnode.app imports these only when an update reaches it) -----------------

def _report(app, t, uid, step, have):
    """One frame: OTA_ID, then the step (0: none, a pull for chunks), the bytes held (-1:
    none) (docs/formats/ota.md)."""
    from tsnode.report import EV_OTA_AT, EV_OTA_ID, EV_OTA_STEP, _i32

    rep = app.reporter
    b = rep._begin(t)
    if b is not None:
        b.event(EV_OTA_ID, t, _i32(uid))
        if step:
            b.event(EV_OTA_STEP, t, step)
        if have >= 0:
            b.event(EV_OTA_AT, t, have)
    rep._send()


class AppUpdates:
    """The app's receiver: reports each step, asks for chunks every ota_pull_ms."""

    def __init__(self, app):
        self.app = app
        self.rx = Receiver("/", app.cfg["kernels"])
        self._last_pull = 0

    def step(self, t):
        """Report what the receiver did; True once an update is verified (switch now)."""
        r = self.rx
        ev, r.events = r.events, []
        have = r.have if r.offer is not None else -1
        for uid, step in ev:
            _report(self.app, t, uid, step, have)
            if step == STEP_VERIFIED:
                self.app.switch = True
        pull = self.app.cfg["ota_pull_ms"]
        if not ev and r.offer is not None and pull and t - self._last_pull >= pull:
            self._last_pull = t
            _report(self.app, t, r.offer[0], 0, have)
        return self.app.switch


def confirm(app, t):
    """The app's first heartbeat on an update's model: end its trial and say so."""
    uid = healthy()
    app.on_trial = False
    _report(app, t, uid, STEP_CONFIRMED, -1)
    print("app: update %d confirmed" % uid)
