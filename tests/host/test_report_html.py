"""The validation report renders in a real browser (headless Chromium) with all its plots."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tinysense.report import svg
from tinysense.report.html import render_summary, write_summary, write_validate

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium(tmp_path: Path, *args: str) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium not installed: `make test` installs it (Debian package "
                    "chromium, in the Makefile's SYSTEM_PACKAGES)")
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


def mismatch_result() -> dict:
    """A validate result with one differing output value, per-op errors and timings."""
    rng = random.Random(7)
    ref = [rng.randint(-128, 127) for _ in range(12 * 22)]
    node = list(ref)
    node[40] = ref[40] + 2 if ref[40] < 126 else ref[40] - 2
    return {
        "model": "tests/conformance/mlperf_kws_ref_model.tflite", "target": "virtual",
        "board": "ESP32_GENERIC", "vectors": 22, "mismatches": 1, "max_abs_diff": 2,
        "bit_exact": False, "node_ms": 41.5, "reference_ms": 0.9,
        "node_heap_peak_bytes": 52_000, "reference_arena_bytes": 23_000,
        "node_times_ms": [41 + rng.random() for _ in range(22)],
        "outputs": [{"index": 0, "name": "Identity", "node": node, "reference": ref}],
        "first_mismatch": {"op_index": 3, "op": "DEPTHWISE_CONV_2D"},
        "op_errors": [{"op_index": i, "op": op, "max_abs_diff": d, "mismatches": int(d > 0)}
                      for i, (op, d) in enumerate([("CONV_2D", 0), ("DEPTHWISE_CONV_2D", 0),
                                                   ("CONV_2D", 0), ("DEPTHWISE_CONV_2D", 3),
                                                   ("FULLY_CONNECTED", 2)])],
    }


def test_report_renders_with_every_plot(tmp_path):
    page = write_validate(mismatch_result(), tmp_path / "report.html")
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace(
        "http://www.w3.org/2000/svg", "")  # self-contained: nothing fetched
    counter = PlotCounter()
    counter.feed(chromium(tmp_path, "--dump-dom", page.as_uri()))
    plots = counter.plots
    assert set(plots) == {"output-0", "op-errors", "latency", "heap"}
    assert plots["output-0"]["circle"] >= 100  # distinct (reference, node) pairs
    assert plots["op-errors"]["rect"] == 5
    assert plots["latency"]["rect"] >= 2
    assert plots["heap"]["rect"] == 2

    shot = tmp_path / "report.png"
    chromium(tmp_path, "--window-size=1100,2200", f"--screenshot={shot}", page.as_uri())
    colors = png_colors(shot)
    total = sum(colors.values())
    assert colors[b"\xff\xff\xff"] < 0.97 * total  # not a blank page
    for color in (svg.BAD, svg.ACCENT):  # mismatch marks and bars are painted
        assert colors[hex_rgb(color)] > 200, color


def test_report_says_what_is_missing_instead_of_drawing_it(tmp_path):
    result = {"model": "m.tflite", "bit_exact": True, "vectors": 20, "mismatches": 0}
    page = write_validate(result, tmp_path / "r.html")
    text = page.read_text()
    assert "data-plot" not in text
    assert "no per-inference times" in text and "every op matched" in text


def test_summary_page_over_several_models(tmp_path):
    good = dict(mismatch_result(), bit_exact=True, mismatches=0, op_errors=[],
                model="tflm_hello_world_int8.tflite", node_heap_peak_bytes=150_000)
    page = write_summary([mismatch_result(), good], tmp_path / "summary.html",
                         ["kws.html", "hello.html"])
    counter = PlotCounter()
    counter.feed(chromium(tmp_path, "--dump-dom", page.as_uri()))
    assert set(counter.plots) == {"summary-latency", "summary-heap"}
    assert counter.plots["summary-heap"]["rect"] == 2
    html = render_summary([good])
    assert "1 of 1 models bit-exact" in html
    assert '<a href="kws.html">' in page.read_text()
