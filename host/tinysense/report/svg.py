"""Tiny inline-SVG charts (scatter, bars, histogram) for self-contained HTML reports.

No JavaScript and no external files: each function returns one `<svg>` string carrying a
`data-plot` attribute naming what it shows, so a browser test can find every plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

W, H = 480, 300  # default plot size in CSS pixels
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 28, 44
OK, BAD, INK, GRID, ACCENT = "#2e7d32", "#c62828", "#222", "#ddd", "#1565c0"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.3g}"


@dataclass
class Frame:
    """A plot area mapping data coordinates to SVG pixels, with its axes."""

    x0: float
    x1: float
    y0: float
    y1: float
    w: int = W
    h: int = H
    pad_b: int = PAD_B  # room under the x axis (more for slanted labels)

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1
        return PAD_L + (v - self.x0) / span * (self.w - PAD_L - PAD_R)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1
        return self.h - self.pad_b - (v - self.y0) / span * (self.h - PAD_T - self.pad_b)

    def axes(self, xlabel: str, ylabel: str, xticks: list[float] | None = None,
             yticks: list[float] | None = None) -> list[str]:
        out = []
        for t in yticks if yticks is not None else nice_ticks(self.y0, self.y1):
            if self.y0 <= t <= self.y1:
                y = self.y(t)
                out.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{self.w - PAD_R}" '
                           f'y2="{y:.1f}" stroke="{GRID}"/>')
                out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">'
                           f'{_fmt(t)}</text>')
        for t in xticks if xticks is not None else nice_ticks(self.x0, self.x1):
            if self.x0 <= t <= self.x1:
                x = self.x(t)
                out.append(f'<line x1="{x:.1f}" y1="{self.h - self.pad_b}" x2="{x:.1f}" '
                           f'y2="{self.h - self.pad_b + 4}" stroke="{INK}"/>')
                out.append(f'<text x="{x:.1f}" y="{self.h - self.pad_b + 16}" '
                           f'text-anchor="middle">{_fmt(t)}</text>')
        out.append(f'<line x1="{PAD_L}" y1="{self.h - self.pad_b}" x2="{self.w - PAD_R}" '
                   f'y2="{self.h - self.pad_b}" stroke="{INK}"/>')
        out.append(f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{self.h - self.pad_b}" '
                   f'stroke="{INK}"/>')
        out.append(f'<text x="{(PAD_L + self.w - PAD_R) / 2:.0f}" y="{self.h - 8}" '
                   f'text-anchor="middle">{escape(xlabel)}</text>')
        out.append(f'<text transform="translate(14 {(PAD_T + self.h - self.pad_b) / 2:.0f}) '
                   f'rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>')
        return out


def _svg(kind: str, title: str, body: list[str], w: int = W, h: int = H) -> str:
    return (f'<svg class="plot" data-plot="{escape(kind)}" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
            f'font-family="sans-serif" font-size="11">'
            f'<title>{escape(title)}</title>'
            f'<text x="{w / 2:.0f}" y="16" text-anchor="middle" font-size="13" '
            f'font-weight="bold">{escape(title)}</text>' + "".join(body) + "</svg>")


def scatter(kind: str, title: str, pairs: dict[tuple[float, float], int],
            xlabel: str = "reference (tflite-micro)", ylabel: str = "node") -> str:
    """Node vs reference values: one dot per distinct (reference, node) pair, area by count.

    Points on the diagonal agree; any point off it is a mismatch, drawn in red. int8 values
    get the full int8 range as axes, other values (dequantized floats) their own range.
    """
    values = [v for pair in pairs for v in pair]
    lo, hi = (min(values), max(values)) if values else (-128, 127)
    if all(float(v).is_integer() and -128 <= v <= 127 for v in values):
        lo, hi = -128, 127
    elif hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    f = Frame(lo, hi, lo, hi, W, W)
    ticks = nice_ticks(lo, hi, 4)
    body = f.axes(xlabel, ylabel, ticks, ticks)
    body.append(f'<line x1="{f.x(lo):.1f}" y1="{f.y(lo):.1f}" x2="{f.x(hi):.1f}" '
                f'y2="{f.y(hi):.1f}" stroke="{GRID}" stroke-dasharray="4 3"/>')
    top = max(pairs.values(), default=1)
    for (ref, got), n in sorted(pairs.items(), key=lambda kv: kv[0][0] != kv[0][1]):
        r = 1.5 + 3.5 * math.sqrt(n / top)
        if ref == got:
            style = f'fill="{OK}" fill-opacity="0.6"'
        else:  # a mismatch must stand out even when it is one value among thousands
            r, style = max(r, 4.5), f'fill="{BAD}" stroke="{INK}" stroke-width="1"'
        body.append(f'<circle cx="{f.x(ref):.1f}" cy="{f.y(got):.1f}" r="{r:.1f}" {style}>'
                    f'<title>reference {_fmt(ref)}, node {_fmt(got)}: {n}x</title></circle>')
    return _svg(kind, title, body, W, W)


def bars(kind: str, title: str, labels: list[str], values: list[float], *,
         ylabel: str = "", colors: list[str] | None = None,
         hline: tuple[float, str] | None = None) -> str:
    """Vertical bars, one per label; `hline` = (value, label) draws a reference line.

    Labels that do not fit under their bar are drawn slanted (the plot grows to hold them).
    """
    top = max([*values, hline[0] if hline else 0, 1e-9])
    slot_px = (W - PAD_L - PAD_R) / max(len(values), 1)
    slanted = any(len(label) * 5.5 > slot_px for label in labels)
    h = H + 60 if slanted else H
    f = Frame(0, len(values), 0, top * 1.1, W, h, PAD_B + (h - H))
    body = f.axes("", ylabel, xticks=[])
    slot = (f.x(1) - f.x(0)) if values else 0
    for i, (label, value) in enumerate(zip(labels, values)):
        x, y = f.x(i) + slot * 0.15, f.y(value)
        color = colors[i] if colors else ACCENT
        body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                    f'height="{f.y(0) - y:.1f}" fill="{color}"><title>{escape(label)}: '
                    f'{_fmt(value)}</title></rect>')
        if len(values) > 40:
            continue  # too many to label; each bar's tooltip names it
        cx, base = x + slot * 0.35, f.y(0) + 12
        if slanted:
            body.append(f'<text transform="translate({cx:.1f} {base}) rotate(-35)" '
                        f'text-anchor="end" font-size="9">{escape(label[:24])}</text>')
        else:
            body.append(f'<text x="{cx:.1f}" y="{base}" text-anchor="middle" font-size="9">'
                        f'{escape(label)}</text>')
        if value:
            body.append(f'<text x="{cx:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                        f'font-size="9">{_fmt(value)}</text>')
    if hline:
        y = f.y(hline[0])
        body.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" '
                    f'stroke="{BAD}" stroke-dasharray="6 3"/>')
        body.append(f'<text x="{W - PAD_R}" y="{y - 4:.1f}" text-anchor="end" '
                    f'fill="{BAD}">{escape(hline[1])}</text>')
    return _svg(kind, title, body, W, h)


def histogram(kind: str, title: str, values: list[float], *, xlabel: str,
              marks: list[tuple[float, str, str]] = (), bins: int = 20) -> str:
    """Histogram of `values`; `marks` = (x, label, color) vertical lines (median, reference)."""
    if not values:
        return _svg(kind, title, ['<text x="50%" y="50%" text-anchor="middle">no data</text>'])
    lo, hi = min(values), max(values)  # the bins follow the data; far-off marks are noted
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    f = Frame(lo, hi, 0, max(counts) * 1.15)
    body = f.axes(xlabel, "inferences")
    for i, n in enumerate(counts):
        if n:
            x0, x1, y = f.x(lo + i * width), f.x(lo + (i + 1) * width), f.y(n)
            body.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                        f'height="{f.y(0) - y:.1f}" fill="{ACCENT}"><title>{n} in '
                        f'[{_fmt(lo + i * width)}, {_fmt(lo + (i + 1) * width)})</title></rect>')
    for i, (x, label, color) in enumerate(marks):
        if not lo <= x <= hi:
            body.append(f'<text x="{W - PAD_R}" y="{PAD_T + 12 + 13 * i}" text-anchor="end" '
                        f'fill="{color}">{escape(label)} (off scale)</text>')
            continue
        px = f.x(x)
        body.append(f'<line x1="{px:.1f}" y1="{PAD_T}" x2="{px:.1f}" y2="{H - PAD_B}" '
                    f'stroke="{color}" stroke-width="2"/>')
        body.append(f'<text x="{px + 4:.1f}" y="{PAD_T + 12 + 13 * i}" fill="{color}">'
                    f'{escape(label)}</text>')
    return _svg(kind, title, body)


def hbars(kind: str, title: str, rows: list[tuple[str, float, str]], *, limit: float,
          limit_label: str, unit: str = "") -> str:
    """Horizontal bars (label, value, color) against a limit line, e.g. heap vs budget."""
    h = PAD_T + 34 * len(rows) + PAD_B
    left = 130
    top = max([limit, *(r[1] for r in rows), 1e-9]) * 1.05
    scale = (W - left - PAD_R) / top
    body = []
    for i, (label, value, color) in enumerate(rows):
        y = PAD_T + 8 + 34 * i
        body.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(label)}'
                    '</text>')
        body.append(f'<rect x="{left}" y="{y}" width="{max(value * scale, 1):.1f}" height="22" '
                    f'fill="{color}"><title>{escape(label)}: {_fmt(value)}{unit}</title></rect>')
        body.append(f'<text x="{left + value * scale + 4:.1f}" y="{y + 15}">'
                    f'{_fmt(value)}{escape(unit)}</text>')
    x = left + limit * scale
    body.append(f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{h - PAD_B + 6}" '
                f'stroke="{BAD}" stroke-width="2" stroke-dasharray="6 3"/>')
    anchor = "end" if x > W * 0.7 else "middle"  # keep the label inside the plot
    body.append(f'<text x="{x:.1f}" y="{h - PAD_B + 20}" text-anchor="{anchor}" fill="{BAD}">'
                f'{escape(limit_label)}</text>')
    return _svg(kind, title, body, W, h)
