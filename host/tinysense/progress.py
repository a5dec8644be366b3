"""Progress for long commands (deploy, validate-all): one updating line on a terminal, plain
lines otherwise.

The library's long functions take `progress`, a callable given one line per step (None:
silence). `step(progress, i, n, text)` reports step i of n: with a plain callable (print, a
test's list.append) that is the line "[i/n] text", as it always was; with a `Progress` on a
terminal it rewrites one status line in place (\\r, cut to the terminal's width), and the
lines given to the callable itself (results, errors, summaries) are printed above it and
stay. Not a terminal (a pipe, a log file, CI): every line is printed, nothing is rewritten.
No dependency: a carriage return and an erase-line code are all an updating line needs.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import TextIO

ProgressFn = Callable[[str], None]
_ERASE_EOL = "\x1b[K"      # erase to the end of the line (every terminal since the VT100)


class Progress:
    """A progress callable for the CLI: `progress(line)` keeps a line, `progress.step(...)`
    and `progress.detail(line)` update the status line (on a terminal).

    Args:
        out: where it goes (default stdout); an updating line only if out.isatty().
        live: force the terminal behaviour on or off (default: out.isatty()).
    """

    def __init__(self, out: TextIO | None = None, *, live: bool | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        if live is None:
            live = bool(getattr(self.out, "isatty", lambda: False)())
        self.live = live
        self._status = ""        # "[i/n] text" of the current step
        self._shown = False      # a status line is on the screen, unfinished

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((80, 24)).columns - 1)

    def _draw(self, text: str) -> None:
        self.out.write("\r" + text[:self._width()] + _ERASE_EOL)
        self.out.flush()
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self.out.write("\r" + _ERASE_EOL)
            self._shown = False

    def __call__(self, line: str) -> None:
        """A line that stays (a result, an error, a summary)."""
        if not self.live:
            print(line, file=self.out, flush=True)
            return
        self._clear()
        print(line, file=self.out, flush=True)
        if self._status:
            self._draw(self._status)

    def step(self, i: int, n: int, text: str, indent: str = "") -> None:
        """Step i of n; replaces the previous step's line on a terminal."""
        self._status = f"{indent}[{i}/{n}] {text}"
        if self.live:
            self._draw(self._status)
        else:
            print(self._status, file=self.out, flush=True)

    def detail(self, line: str) -> None:
        """A line about the current step: on a terminal shown after the step and then
        replaced by the next one; otherwise printed like any other line."""
        if not self.live:
            print(line, file=self.out, flush=True)
            return
        self._draw(f"{self._status}: {line.strip()}" if self._status else line.strip())

    def close(self) -> None:
        """End the status line (leaves the terminal at the start of a clean line)."""
        if self.live:
            self._clear()
        self._status = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def step(progress: ProgressFn | None, i: int, n: int, text: str, indent: str = "") -> None:
    """Report step i of n to `progress`, whatever kind of callable it is."""
    if progress is None:
        return
    if isinstance(progress, Progress):
        progress.step(i, n, text, indent)
    else:
        progress(f"{indent}[{i}/{n}] {text}")


def detail(progress: ProgressFn | None) -> ProgressFn | None:
    """The callable for the lines of one step's own work (Progress.detail, else itself)."""
    return progress.detail if isinstance(progress, Progress) else progress
