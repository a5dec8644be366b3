"""Over-the-air update payloads and the update bundle (docs/formats/ota.md), host side.

The constants are the node's (firmware/tsnode/ota.py, read with node_consts): payload
types, sizes, limits, the bundle magic and the step codes. The node's twin of this codec is
that module; both are tested against tests/vectors/ota/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct

from tinysense.formats import frame as _frame
from tinysense.formats import node_consts, node_value

_OTA = "tsnode/ota.py"
_C = node_consts(_OTA)

PTYPE_OFFER: int = node_value("tsnode/uplink/frame.py", "PTYPE_OFFER")
PTYPE_CHUNK: int = node_value("tsnode/uplink/frame.py", "PTYPE_CHUNK")
OTA_VERSION: int = _C["_OTA_VERSION"]
ACTION_OFFER: int = _C["_ACT_OFFER"]
ACTION_CANCEL: int = _C["_ACT_CANCEL"]
OFFER_LEN: int = _C["OFFER_LEN"]
CHUNK_HEADER: int = _C["CHUNK_HEADER"]
MIN_CHUNK: int = _C["MIN_CHUNK"]
MAX_CHUNK: int = _C["MAX_CHUNK"]
MAX_BUNDLE: int = _C["MAX_BUNDLE"]
BUNDLE_HEADER: int = _C["BUNDLE_HEADER"]
BUNDLE_MAGIC: bytes = _C["BUNDLE_MAGIC"]
MAX_VECTORS: int = _C["MAX_VECTORS"]
TRIAL_CRASHES: int = _C["TRIAL_CRASHES"]
TRIAL_BOOTS: int = _C["TRIAL_BOOTS"]
_OFFER = struct.Struct(_C["_OFFER_FMT"])
_CHUNK = struct.Struct(_C["_CHUNK_FMT"])
_BUNDLE = struct.Struct(_C["_BUNDLE_FMT"])

# {1: "offered", ..., -6: "too_big"}: the node's STEP_* constants
STEPS: dict[int, str] = {v: k[5:].lower() for k, v in _C.items() if k.startswith("STEP_")}
STEP_CODES: dict[str, int] = {name: code for code, name in STEPS.items()}

# the node's event codes for OTA reports (firmware/tsnode/report.py)
EV_OTA_ID: int = node_value("tsnode/report.py", "EV_OTA_ID")
EV_OTA_AT: int = node_value("tsnode/report.py", "EV_OTA_AT")
EV_OTA_STEP: int = node_value("tsnode/report.py", "EV_OTA_STEP")

assert _OFFER.size == OFFER_LEN and _CHUNK.size == CHUNK_HEADER
assert (PTYPE_OFFER, PTYPE_CHUNK) == (_frame.PTYPE_OFFER, _frame.PTYPE_CHUNK)
assert _BUNDLE.size == BUNDLE_HEADER


class OtaFormatError(ValueError):
    """A payload or bundle that does not follow docs/formats/ota.md."""


@dataclasses.dataclass(frozen=True)
class Offer:
    update_id: int
    length: int
    sha256: bytes
    chunk_size: int
    action: int = ACTION_OFFER


def _check_id(update_id: int) -> None:
    if not 0 < update_id < 2**32:
        raise ValueError(f"update id {update_id}: 1..2^32-1")


def encode_offer(update_id: int, bundle: bytes, chunk_size: int = MAX_CHUNK) -> bytes:
    """The offer payload (type 3) for a bundle."""
    _check_id(update_id)
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size {chunk_size}: {MIN_CHUNK}..{MAX_CHUNK}")
    if not BUNDLE_HEADER <= len(bundle) <= MAX_BUNDLE:
        raise ValueError(f"a bundle of {len(bundle)} bytes: {BUNDLE_HEADER}..{MAX_BUNDLE}")
    return _OFFER.pack(OTA_VERSION, ACTION_OFFER, update_id, len(bundle),
                       hashlib.sha256(bundle).digest(), chunk_size)


def encode_cancel(update_id: int) -> bytes:
    """The cancel payload (type 3, action 2) for an update id."""
    _check_id(update_id)
    return _OFFER.pack(OTA_VERSION, ACTION_CANCEL, update_id, 0, bytes(32), 0)


def decode_offer(payload: bytes) -> Offer:
    if len(payload) != OFFER_LEN:
        raise OtaFormatError(f"an offer is {OFFER_LEN} bytes, got {len(payload)}")
    version, action, uid, length, sha, chunk = _OFFER.unpack(payload)
    if version != OTA_VERSION or action not in (ACTION_OFFER, ACTION_CANCEL):
        raise OtaFormatError(f"offer version {version}, action {action}")
    return Offer(uid, length, sha, chunk, action)


def encode_chunk(update_id: int, offset: int, data: bytes) -> bytes:
    """The chunk payload (type 4): `data` is the bundle's bytes at `offset`."""
    _check_id(update_id)
    if not 0 < len(data) <= MAX_CHUNK:
        raise ValueError(f"a chunk holds 1..{MAX_CHUNK} bytes, got {len(data)}")
    return _CHUNK.pack(OTA_VERSION, update_id, offset) + bytes(data)


def decode_chunk(payload: bytes) -> tuple[int, int, bytes]:
    """(update id, offset, data)."""
    if len(payload) <= CHUNK_HEADER:
        raise OtaFormatError(f"a chunk is more than {CHUNK_HEADER} bytes, got {len(payload)}")
    version, uid, offset = _CHUNK.unpack_from(payload)
    if version != OTA_VERSION:
        raise OtaFormatError(f"chunk version {version}")
    return uid, offset, bytes(payload[CHUNK_HEADER:])


def chunks(update_id: int, bundle: bytes, chunk_size: int = MAX_CHUNK, start: int = 0):
    """The chunk payloads of a bundle from byte `start` (a multiple of chunk_size) on."""
    if start % chunk_size:
        raise ValueError(f"offset {start} is not a multiple of the chunk size {chunk_size}")
    for off in range(start, len(bundle), chunk_size):
        yield encode_chunk(update_id, off, bundle[off:off + chunk_size])


# --- the bundle -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Bundle:
    package: bytes
    vectors: list[tuple[bytes, bytes]]   # (input bytes, output bytes) per vector
    meta: bytes = b""
    config: bytes = b""


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def build_bundle(package: bytes, vectors: list[tuple[bytes, bytes]], meta: bytes = b"",
                 config: bytes = b"") -> bytes:
    """The bundle's bytes: header, package (padded to 4), vectors, meta, config."""
    if not 1 <= len(vectors) <= MAX_VECTORS:
        raise ValueError(f"a bundle carries 1..{MAX_VECTORS} self-test vectors, got "
                         f"{len(vectors)}")
    i, o = len(vectors[0][0]), len(vectors[0][1])
    if i == 0 or o == 0 or any(len(a) != i or len(b) != o for a, b in vectors):
        raise ValueError("every self-test vector has the same nonzero input and output sizes")
    body = package + bytes(_pad4(len(package)) - len(package))
    body += b"".join(a + b for a, b in vectors) + meta + config
    total = BUNDLE_HEADER + len(body)
    if total > MAX_BUNDLE:
        raise ValueError(f"the bundle would be {total:,} bytes; at most {MAX_BUNDLE:,}")
    head = _BUNDLE.pack(BUNDLE_MAGIC, total, len(package), len(meta), len(config),
                        len(vectors), 0, i, o)
    return head + body


def parse_bundle(data: bytes) -> Bundle:
    """The parts of a bundle; OtaFormatError when its header and sizes disagree."""
    if len(data) < BUNDLE_HEADER:
        raise OtaFormatError(f"a bundle has at least {BUNDLE_HEADER} bytes, got {len(data)}")
    magic, total, p, m, c, v, res, i, o = _BUNDLE.unpack_from(data)
    if magic != BUNDLE_MAGIC:
        raise OtaFormatError(f"not an update bundle (magic {magic!r}, expected "
                             f"{BUNDLE_MAGIC!r})")
    if res or not 1 <= v <= MAX_VECTORS or not i or not o:
        raise OtaFormatError("bad header fields (reserved, vector count or sizes)")
    if total != len(data) or total != BUNDLE_HEADER + _pad4(p) + v * (i + o) + m + c:
        raise OtaFormatError(f"the header's sizes do not add up to the bundle's "
                             f"{len(data)} bytes")
    pos = BUNDLE_HEADER
    package = data[pos:pos + p]
    pos += _pad4(p)
    vectors = []
    for _ in range(v):
        vectors.append((data[pos:pos + i], data[pos + i:pos + i + o]))
        pos += i + o
    return Bundle(package, vectors, data[pos:pos + m], data[pos + m:pos + m + c])
