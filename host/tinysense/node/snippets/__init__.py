"""MicroPython snippets the host runs on a node over the raw REPL, kept as files, not strings.

`script(name, **params)` returns the snippet's source preceded by one assignment per
parameter (`_PATHS = [...]`) and by the shared snippets it uses (_USES), ready for Node.exec.
Snippets print plain lines the host parses.
"""

from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).resolve().parent
# snippet -> shared snippets prepended to it (they define helpers it calls)
_USES = {"scan": ("hashfile",), "sha256": ("hashfile",)}


def script(name: str, **params) -> str:
    """Source of snippets/<name>.py with `_<PARAM> = repr(value)` lines and the shared
    snippets it uses prepended."""
    head = "".join(f"_{key.upper()} = {value!r}\n" for key, value in params.items())
    shared = "".join((_DIR / f"{use}.py").read_text() for use in _USES.get(name, ()))
    return head + shared + (_DIR / f"{name}.py").read_text()
