"""The firmware cache: images kept by SHA-256 so a known one can be named instead of a path.

Layout: STATE_DIR/firmware/<sha256>.bin plus index.json mapping each sha256 to the names
it was added under, its chip, size and app version. `resolve_firmware("ESP32_GENERIC-v1.29")`,
`resolve_firmware("3fa2c1")` (a unique sha256 prefix of 6+ hex digits) and
`resolve_firmware("path/to/firmware.bin")` (which also adds the file) all work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

from tinysense import paths
from tinysense.errors import TinysenseError

_MIN_PREFIX = 6


@dataclasses.dataclass(frozen=True)
class CachedFirmware:
    sha256: str
    path: Path
    names: tuple[str, ...]
    chip: str
    size: int
    version: str


def cache_dir() -> Path:
    return paths.STATE_DIR / "firmware"


def _index_path() -> Path:
    return cache_dir() / "index.json"


def _load_index() -> dict:
    try:
        return json.loads(_index_path().read_text())
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TinysenseError(f"firmware cache index {_index_path()} is corrupt; delete it and "
                             "add the images again") from None


def _save_index(index: dict) -> None:
    cache_dir().mkdir(parents=True, exist_ok=True)
    tmp = _index_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    os.replace(tmp, _index_path())


def _entry(sha: str, meta: dict) -> CachedFirmware:
    return CachedFirmware(sha, cache_dir() / f"{sha}.bin", tuple(meta.get("names", ())),
                          meta.get("chip", "?"), meta.get("size", 0), meta.get("version", ""))


def add_firmware(data: bytes, name: str, chip: str, version: str = "") -> CachedFirmware:
    """Keep `data` in the cache under its sha256 and `name`; returns the entry."""
    sha = hashlib.sha256(data).hexdigest()
    path = cache_dir() / f"{sha}.bin"
    if not path.exists():
        cache_dir().mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    with _index_lock():   # two flashes at once must not lose each other's entries
        index = _load_index()
        meta = index.setdefault(sha, {"names": [], "chip": chip, "size": len(data),
                                      "version": version, "added": time.time()})
        if name and name not in meta["names"]:
            meta["names"].append(name)
        _save_index(index)
    return _entry(sha, meta)


@contextlib.contextmanager
def _index_lock():
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "index.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def list_firmware() -> list[CachedFirmware]:
    return [_entry(sha, meta) for sha, meta in sorted(_load_index().items())]


def lookup_firmware(ref: str) -> CachedFirmware | None:
    """A cached image by name or unique sha256 prefix (None if nothing matches)."""
    index = _load_index()
    by_name = [sha for sha, meta in index.items() if ref in meta.get("names", ())]
    hexref = ref.lower()
    by_sha = ([sha for sha in index if sha.startswith(hexref)]
              if len(ref) >= _MIN_PREFIX and all(c in "0123456789abcdef" for c in hexref)
              else [])
    found = sorted(set(by_name) | set(by_sha))
    if len(found) > 1:
        raise TinysenseError(f"firmware '{ref}' is ambiguous: it matches "
                             f"{', '.join(s[:12] for s in found)}; give more of the sha256")
    if not found:
        return None
    entry = _entry(found[0], index[found[0]])
    if not entry.path.is_file():
        raise TinysenseError(f"firmware cache entry {entry.sha256[:12]} lost its file "
                             f"{entry.path}; add the image again")
    return entry


def resolve_firmware(ref: str) -> tuple[bytes, str]:
    """(image bytes, display name) for a path or a cached name / sha256 prefix."""
    path = Path(ref)
    if path.is_file():
        return path.read_bytes(), path.name
    entry = lookup_firmware(ref)
    if entry is None:
        known = ", ".join(n for e in list_firmware() for n in e.names) or "none yet"
        raise TinysenseError(f"firmware '{ref}': no such file, and no cached image with that "
                             f"name or sha256 prefix (cached: {known})")
    data = entry.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise TinysenseError(f"cached firmware {entry.path} does not match its sha256 "
                             "(corrupt cache); add the image again")
    return data, entry.names[0] if entry.names else entry.sha256[:12]
