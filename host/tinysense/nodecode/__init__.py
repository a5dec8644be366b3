"""MicroPython snippets the host runs on a node over the raw REPL, kept as files, not strings.

`script(name, **params)` returns the snippet's source preceded by one assignment per
parameter (`_PATHS = [...]`), ready for Node.exec. Snippets print plain lines the host parses.
"""

from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).resolve().parent


def script(name: str, **params) -> str:
    """Source of nodecode/<name>.py with `_<PARAM> = repr(value)` lines prepended."""
    head = "".join(f"_{key.upper()} = {value!r}\n" for key, value in params.items())
    return head + (_DIR / f"{name}.py").read_text()
