"""Headless Chromium for the page tests: render a page, dump its DOM, take a screenshot,
and read the pixels back (a tiny PNG decoder, so no imaging library is needed); and drive a
live page over the DevTools protocol on a pipe (`Browser`: no websocket, no extra package)."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import struct
import subprocess
import threading
import time
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium_exe() -> str:
    """Chromium's binary; fails (never skips) when it is missing."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium not installed: `make setup` installs it (Debian package "
                    "chromium, in the Makefile's SYSTEM_PACKAGES)")
    return exe


def chromium(tmp_path: Path, *args: str) -> str:
    exe = chromium_exe()
    proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class PlotCounter(HTMLParser):
    """Counts, per `<svg data-plot=...>`, the marks drawn inside it."""

    def __init__(self):
        super().__init__()
        self.plots: dict[str, Counter] = {}
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg" and "data-plot" in attrs:
            self._current = attrs["data-plot"]
            self.plots[self._current] = Counter()
        elif self._current is not None:
            self.plots[self._current][tag] += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self._current = None


def png_colors(path: Path) -> Counter:
    """Pixel colours of an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colors = bytearray(stride), Counter()
    for row in range(height):
        ftype, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:
                                                               (row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        colors.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp))
        prev = line
    return colors


def hex_rgb(color: str) -> bytes:
    return bytes.fromhex(color[1:])


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe: Chromium reads
    NUL-terminated JSON commands on its fd 3 and writes replies and events on fd 4
    (`--remote-debugging-pipe`). One page (target), attached in flat session mode."""

    def __init__(self, tmp_path: Path):
        def high(fd: int) -> int:   # out of the way of the child's 3 and 4
            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
            os.close(fd)
            return moved

        cmd_r, cmd_w = (high(fd) for fd in os.pipe())
        res_r, res_w = (high(fd) for fd in os.pipe())

        def child() -> None:
            os.dup2(cmd_r, 3)   # dup2 makes them inheritable; everything else is CLOEXEC
            os.dup2(res_w, 4)

        self.stderr = open(tmp_path / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [chromium_exe(), *CHROMIUM_FLAGS, "--remote-debugging-pipe",
             "--window-size=1280,900", f"--user-data-dir={tmp_path / 'cdp-profile'}"],
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
            preexec_fn=child, close_fds=False)
        os.close(cmd_r)
        os.close(res_w)
        self._out = os.fdopen(cmd_w, "wb", buffering=0)
        self._in = os.fdopen(res_r, "rb", buffering=0)
        self._next = 0
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                break
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def send(self, method: str, session: str | None = None, timeout: float = 60,
             **params) -> dict:
        """One DevTools command; its result, or a test failure quoting the error."""
        self._next += 1
        ident = self._next
        msg = {"id": ident, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    pytest.fail(f"chromium: no reply to {method} (exit {self.proc.poll()}); "
                                f"log {self.stderr.name}")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(ident)
        if "error" in reply:
            pytest.fail(f"chromium: {method}: {reply['error']}")
        return reply["result"]

    def page(self, method: str, **params) -> dict:
        return self.send(method, session=self.session, **params)

    def goto(self, url: str) -> None:
        result = self.page("Page.navigate", url=url)
        if result.get("errorText"):
            pytest.fail(f"chromium: cannot load {url}: {result['errorText']}")
        self.wait_for(f"document.readyState === 'complete' && location.href === {json.dumps(url)}",
                      what=f"{url} loaded")

    def eval(self, expression: str):
        """Evaluate JavaScript in the page; its value (promises awaited)."""
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            pytest.fail(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20, what: str = ""):
        """Poll `expression` until it is truthy; on timeout fail, quoting the page's text."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.eval("document.body ? document.body.innerText : ''")
                pytest.fail(f"page never showed {what or expression} within {timeout} s; "
                            f"it shows:\n{text[:3000]}")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._out.write(json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()
        self.stderr.close()
