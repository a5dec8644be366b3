"""Self-contained HTML validation reports (one model, and a summary over many) with SVG plots.

`render_validate(result)` takes the dict `tinysense validate --json` writes. It reads these
keys, and draws a plot only for the data that is there (a missing key is said, not faked):

- model, target, board, vectors, mismatches, max_abs_diff, bit_exact, node_ms, reference_ms,
  node_heap_peak_bytes (+ node_package_heap_bytes, the package buffer when it is in RAM: the
  node's heap figure is their sum everywhere), reference_arena_bytes: the headline numbers;
- heap_budget_bytes (else the board config's heap_budget): the heap plot's limit line;
- node_times_ms: every timed node inference, for the latency histogram;
- outputs: [{"index", "name", "node": [...], "reference": [...]}], int8 values (any nesting,
  all vectors concatenated), for the node-vs-reference scatter of each output;
- first_mismatch: {"op_index", "op_name", ...} naming the first op whose output differs, and
  op_errors: [{"op_index", "op", "identical", "max_abs_diff"?}] for the per-op error plot.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import Counter
from html import escape
from pathlib import Path

from tinysense.report import svg

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1040px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#666;font-size:13px}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:110px}
.card b{display:block;font-size:18px}.card span{color:#666;font-size:12px}
.ok{color:#2e7d32}.bad{color:#c62828}.plots{display:flex;flex-wrap:wrap;gap:16px}
.plot{border:1px solid #eee;border-radius:4px;background:#fff}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #eee;
padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}
.note{color:#666;font-size:13px}
"""


def _flat(values) -> list[float]:
    if isinstance(values, (list, tuple)):
        out: list[float] = []
        for v in values:
            out.extend(_flat(v))
        return out
    return [values]


def _num(value, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}{unit}"
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def _budget(result: dict) -> int | None:
    if result.get("heap_budget_bytes"):
        return int(result["heap_budget_bytes"])
    board = result.get("board")
    if not board:
        return None
    try:
        from tinysense.boards import load_board

        return load_board(board).heap_budget
    except Exception:  # an unknown board in an old report: no limit line, said below
        return None


def _page(title: str, body: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}"
            f"<p class=\"meta\">tinysense report, {stamp}</p></body></html>\n")


def _card(label: str, value: str, cls: str = "") -> str:
    return f'<div class="card"><b class="{cls}">{escape(value)}</b><span>{escape(label)}</span></div>'


def _target_text(target) -> str:
    if isinstance(target, dict):
        return " ".join(str(target.get(k, "")) for k in ("kind", "url") if target.get(k))
    return str(target or "n/a")


_MAX_DOTS = 3000  # distinct (reference, node) pairs drawn per output; mismatches always


def output_plots(result: dict) -> list[str]:
    """One node-vs-reference scatter per output tensor."""
    plots = []
    for i, out in enumerate(result.get("outputs") or []):
        node, ref = _flat(out.get("node", [])), _flat(out.get("reference", []))
        pairs = Counter(zip(ref, node))
        bad = sum(n for (r, g), n in pairs.items() if r != g)
        if len(pairs) > _MAX_DOTS:  # keep every mismatch, thin out the agreeing pairs
            same = [p for p in pairs if p[0] == p[1]]
            keep = set(same[::len(same) // _MAX_DOTS + 1]) | {p for p in pairs if p[0] != p[1]}
            pairs = Counter({p: n for p, n in pairs.items() if p in keep})
        name = out.get("name") or f"output {out.get('index', i)}"
        title = f"{name}: node vs reference ({len(node)} values, {bad} differ)"
        plots.append(svg.scatter(f"output-{i}", title, dict(pairs)))
    return plots


def op_error_plot(result: dict) -> str | None:
    """Per-op agreement when the validation found a mismatch: max |node - reference| where
    it was measured, a bar marked 'differs' where only the checksum told."""
    rows = result.get("op_errors") or []
    if not rows:
        return None
    first = (result.get("first_mismatch") or {}).get("op_index")
    known = [float(r["max_abs_diff"]) for r in rows if r.get("max_abs_diff") is not None]
    unknown_height = max(known, default=1.0) or 1.0
    labels, values, colors = [], [], []
    for i, r in enumerate(rows):
        labels.append(f"{r.get('op_index', i)} {r.get('op', '')}")
        if r.get("identical", r.get("max_abs_diff", 0) == 0):
            values.append(0.0)
            colors.append(svg.OK)
        elif r.get("max_abs_diff") is not None:
            values.append(float(r["max_abs_diff"]))
            colors.append(svg.BAD if r.get("op_index") == first else "#ef6c00")
        else:
            values.append(unknown_height)
            colors.append("#ffb74d")  # differs; magnitude not measured
    vector = (result.get("first_mismatch") or {}).get("vector")
    on = f" on vector '{vector}'" if vector is not None else ""
    return svg.bars("op-errors", f"per op{on}: max |node - reference| (light: differs, not "
                    "measured)", labels, values, ylabel="int8 steps", colors=colors)


def latency_plot(result: dict) -> str | None:
    times = [float(t) for t in result.get("node_times_ms") or []]
    if not times:
        return None
    marks = []
    if result.get("node_ms") is not None:
        marks.append((float(result["node_ms"]), f"node median {_num(result['node_ms'])} ms",
                      svg.INK))
    if result.get("reference_ms") is not None:
        marks.append((float(result["reference_ms"]),
                      f"reference {_num(result['reference_ms'])} ms", svg.OK))
    return svg.histogram("latency", f"node latency over {len(times)} inferences", times,
                         xlabel="ms per inference", marks=marks)


def node_heap(result: dict) -> int | None:
    """The node's heap for this model: what the engine holds while running plus the package
    buffer when the package sits in RAM (node_package_heap_bytes); one figure for the card,
    the plot and its share of the budget."""
    peak = result.get("node_heap_peak_bytes")
    if peak is None:
        return None
    return int(peak) + int(result.get("node_package_heap_bytes") or 0)


def first_mismatch_text(first) -> str:
    """The first differing op as a sentence (not a key=value dump)."""
    if isinstance(first, str):
        return first
    if first.get("op_index") is None:
        return str(first.get("op_name", "no single op found"))
    name = f" '{first['tensor_name']}'" if first.get("tensor_name") else ""
    shape = "x".join(str(d) for d in first.get("shape") or [])
    text = (f"op #{first['op_index']} ({first.get('op_name', '?')}) is the first whose output "
            f"differs: {first.get('differing_values', '?')} of {first.get('values', '?')} "
            f"values of tensor {first.get('tensor', '?')}{name}")
    text += f" ({shape})" if shape else ""
    if first.get("max_abs_diff") is not None:
        text += f", by up to {_num(first['max_abs_diff'])} int8 steps"
    if first.get("vector") is not None:
        text += f", on vector '{first['vector']}'"
    return text + "."


def heap_plot(result: dict) -> str | None:
    peak, arena = node_heap(result), result.get("reference_arena_bytes")
    budget = _budget(result)
    if peak is None and arena is None:
        return None
    rows = []
    if peak is not None:
        over = budget is not None and peak > budget
        package = result.get("node_package_heap_bytes")
        what = f"node heap (incl. {package:,} B package)" if package else "node heap peak"
        rows.append((what, float(peak), svg.BAD if over else svg.ACCENT))
    if arena is not None:
        rows.append(("reference arena", float(arena), "#78909c"))
    limit = float(budget) if budget else max(r[1] for r in rows)
    label = "no board budget known"
    if budget:
        share = f", node uses {100 * peak / budget:.1f}%" if peak is not None else ""
        label = f"board budget {budget:,} B{share}"
    return svg.hbars("heap", "heap use vs board budget", rows, limit=limit,
                     limit_label=label, unit=" B")


def render_validate(result: dict) -> str:
    """The HTML page for one `tinysense validate` result dict."""
    model = Path(str(result.get("model", "model"))).name
    exact = result.get("bit_exact")
    verdict = "bit-exact" if exact else ("MISMATCH" if exact is not None else "unknown")
    cards = [
        _card("result", verdict, "ok" if exact else "bad"),
        _card("vectors", _num(result.get("vectors"))),
        _card("mismatches", _num(result.get("mismatches")),
              "bad" if result.get("mismatches") else ""),
        _card("max |diff| of the outputs, all vectors", _num(result.get("max_abs_diff"))),
        _card("node ms (median)", _num(result.get("node_ms"))),
        _card("reference ms", _num(result.get("reference_ms"))),
        _card("node heap (engine + package in RAM)", _num(node_heap(result), " B")),
        _card("reference arena", _num(result.get("reference_arena_bytes"), " B")),
    ]
    parts = [f"<h1>{escape(model)}: {escape(verdict)}</h1>",
             f'<p class="meta">target {escape(_target_text(result.get("target")))}'
             f' &middot; board {escape(str(result.get("board", "n/a")))}</p>',
             f'<div class="cards">{"".join(cards)}</div>']
    first = result.get("first_mismatch")
    if first:
        parts.append(f'<p class="bad">{escape(first_mismatch_text(first))}</p>')
    sections = [
        ("Node vs reference, per output", output_plots(result),
         "no output values in this report (validate --json carries them as 'outputs')"),
        ("Per-op error", [p for p in [op_error_plot(result)] if p],
         "every op matched" if exact else "no per-op data in this report"),
        ("Latency", [p for p in [latency_plot(result)] if p],
         "no per-inference times in this report ('node_times_ms')"),
        ("Memory", [p for p in [heap_plot(result)] if p], "no heap figures in this report"),
    ]
    for title, plots, missing in sections:
        parts.append(f"<h2>{escape(title)}</h2>")
        if plots:
            parts.append(f'<div class="plots">{"".join(plots)}</div>')
        else:
            parts.append(f'<p class="note">{escape(missing)}</p>')
    raw = {k: v for k, v in result.items() if k not in ("outputs", "node_times_ms")}
    parts.append("<h2>Raw result</h2><pre>" + escape(json.dumps(raw, indent=1, default=str))
                 + "</pre>")
    return _page(f"tinysense validate: {model}", "".join(parts))


def render_summary(results: list[dict], links: list[str | None] | None = None,
                   skipped: list[dict] | None = None, errors: list[dict] | None = None) -> str:
    """One page over several validate results: a table plus latency and heap-vs-budget bars.

    `skipped`: models not run, as validate-all lists them ({"model", "reason", ...});
    `errors`: models whose validation failed with an error ({"model", "error"}).
    """
    links = links or [None] * len(results)
    names = [Path(str(r.get("model", f"model {i}"))).stem for i, r in enumerate(results)]
    rows = []
    for name, r, link in zip(names, results, links):
        label = f'<a href="{escape(link)}">{escape(name)}</a>' if link else escape(name)
        exact = r.get("bit_exact")
        budget = _budget(r)
        rows.append(
            f"<tr><td>{label}</td><td class=\"{'ok' if exact else 'bad'}\">"
            f"{'bit-exact' if exact else 'MISMATCH'}</td><td>{_num(r.get('vectors'))}</td>"
            f"<td>{_num(r.get('mismatches'))}</td><td>{_num(r.get('node_ms'))}</td>"
            f"<td>{_num(r.get('reference_ms'))}</td>"
            f"<td>{_num(node_heap(r))}</td><td>{_num(budget)}</td></tr>")
    for item in errors or []:
        rows.append(f"<tr><td>{escape(Path(str(item.get('model', '?'))).stem)}</td>"
                    f"<td class=\"bad\">ERROR</td><td class=\"bad\" colspan=\"6\">"
                    f"{escape(str(item.get('error', '')))}</td></tr>")
    for item in skipped or []:
        rows.append(f"<tr><td>{escape(Path(str(item.get('model', '?'))).stem)}</td>"
                    f"<td class=\"note\" colspan=\"7\">skipped: "
                    f"{escape(str(item.get('reason', '')))}"
                    + (f" ({_num(item.get('heap_needed'))} B needed, budget "
                       f"{_num(item.get('heap_budget'))} B)" if item.get("heap_needed") else "")
                    + "</td></tr>")
    n_exact = sum(1 for r in results if r.get("bit_exact"))
    table = ("<table><tr><th>model</th><th>result</th><th>vectors</th><th>mismatches</th>"
             "<th>node ms</th><th>reference ms</th><th>heap peak B</th><th>budget B</th></tr>"
             + "".join(rows) + "</table>")
    plots = []
    if results:
        plots.append(svg.bars(
            "summary-latency", "node ms per inference (median)", names,
            [float(r.get("node_ms") or 0) for r in results], ylabel="ms",
            colors=[svg.ACCENT if r.get("bit_exact") else svg.BAD for r in results]))
        fractions, colors = [], []
        for r in results:
            peak, budget = node_heap(r), _budget(r)
            frac = 100.0 * peak / budget if peak is not None and budget else 0.0
            fractions.append(frac)
            colors.append(svg.BAD if frac > 100 else svg.ACCENT)
        plots.append(svg.bars("summary-heap", "node heap (incl. package), % of board budget", names,
                              fractions, ylabel="% of budget", colors=colors,
                              hline=(100.0, "budget")))
    n_skip = (f", {len(errors)} failed with an error" if errors else "") + (
        f", {len(skipped)} skipped" if skipped else "")
    body = (f"<h1>tinysense validation: {n_exact} of {len(results)} models bit-exact{n_skip}"
            "</h1>"
            f"{table}<h2>Overview</h2><div class=\"plots\">{''.join(plots)}</div>")
    return _page("tinysense validation summary", body)


def write_validate(result: dict, path: str | os.PathLike) -> Path:
    """Write the report page for one validate result; returns its path."""
    path = Path(path)
    path.write_text(render_validate(result), encoding="utf-8")
    return path


def write_summary(results: list[dict], path: str | os.PathLike,
                  links: list[str | None] | None = None,
                  skipped: list[dict] | None = None, errors: list[dict] | None = None) -> Path:
    """Write the summary page over several validate results; returns its path."""
    path = Path(path)
    path.write_text(render_summary(results, links, skipped, errors), encoding="utf-8")
    return path


def write_validate_all(summary: dict, directory: str | os.PathLike) -> Path:
    """Write one report per model and DIR/summary.html linking them, for the dict
    `tinysense validate-all` returns ({"results", "skipped", ...}); returns the summary path."""
    directory = Path(directory)
    directory.mkdir(exist_ok=True)      # DIR itself; its parent must exist (as for --json)
    links = []
    for result in summary.get("results", []):
        name = Path(str(result.get("model", "model"))).stem + ".html"
        write_validate(result, directory / name)
        links.append(name)
    return write_summary(summary.get("results", []), directory / "summary.html", links,
                         summary.get("skipped"), summary.get("errors"))
