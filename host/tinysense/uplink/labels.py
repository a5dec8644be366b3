"""Decoded records with names, units and class labels: what people and other tools read.

One function, `label_record`, makes the labelled form that `tinysense uplinks`, the monitor,
the gateway's per-frame lines and the MQTT publisher show (docs/formats/app-records.md):
the decoded record's fields stay, and these are added:

  name         the record kind (`inference`, `mem_free`, `counts`, ...; formats.app.KINDS)
  unit         the value's unit, when it has one
  state        the one value a dashboard shows: a label for a class, the number otherwise
  label        inference, and events whose value is a class: the model's class name; an
               update step event: the step's name (docs/formats/ota.md)
  probability  inference: confidence / 256
  by_class     per-class readings: {label: value}

Labels come from the model's meta (`labels`), as the registry keeps them per device and
model id (`Registry.set_model`); without them a class shows as `class <n>`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinysense.formats.app import kind_of

Labels = Sequence[str] | None


def class_name(index, labels: Labels) -> str | None:
    """A class index as its label (`class 3` when the labels are unknown; None for -1)."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        return None
    if labels is not None and index < len(labels):
        return str(labels[index])
    return f"class {index}"


def label_record(rec: dict, labels: Labels = None) -> dict:
    """The labelled copy of a decoded record (see the module docstring)."""
    kind = kind_of(rec)
    out = dict(rec)
    out["name"] = kind.name
    if kind.unit is not None:
        out["unit"] = kind.unit
    t = rec.get("type")
    if t == "inference":
        out["label"] = out["state"] = class_name(rec.get("class"), labels)
        conf = rec.get("confidence")
        if isinstance(conf, int):
            out["probability"] = round(conf / 256, 4)
    elif t == "anomaly":
        out["state"] = rec.get("score")
    elif t == "event":
        value = rec.get("value")
        if kind.value == "class":
            out["label"] = out["state"] = class_name(value, labels)
        elif kind.value == "step":
            from tinysense.formats.ota import STEPS

            out["label"] = out["state"] = STEPS.get(value, f"step {value}")
        else:
            out["state"] = value
    elif t == "reading":
        values = list(rec.get("values") or ())
        if kind.value == "per_class":
            names = [class_name(i, labels) for i in range(len(values))]
            out["by_class"] = dict(zip(names, values))
            # the dashboard value: the class with the most (first on ties), as the app decides
            out["state"] = names[values.index(max(values))] if values else None
        elif len(values) == 1:
            out["state"] = values[0]
    return out


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def record_text(rec: dict, labels: Labels = None, max_values: int = 4) -> str:
    """One short human line for a decoded record, with names instead of codes:
    `inference standing 90%`, `mem_free 39104 B`, `counts [walking=3, running=1]`."""
    lab = label_record(rec, labels)
    name, t = lab["name"], rec.get("type")
    unit = f" {lab['unit']}" if "unit" in lab else ""
    if t == "inference":
        pct = f" {lab['probability'] * 100:.0f}%" if "probability" in lab else ""
        model = f" (model {rec.get('model')})" if rec.get("model") not in (None, 1) else ""
        return f"inference {lab['label']}{pct}{model}"
    if t == "anomaly":
        flag = "ANOMALY" if rec.get("anomalous") else "normal"
        score = rec.get("score")
        shown = f"{score:.3g}" if isinstance(score, float) else _num(score)
        return f"anomaly {flag} score {shown}"
    if t == "event":
        if "label" in lab:
            return f"{name} {lab['label'] if lab['label'] is not None else '-'}"
        return f"{name} {_num(rec.get('value'))}{unit}"
    if t == "reading":
        if "by_class" in lab:
            items = list(lab["by_class"].items())
            shown = ", ".join(f"{k}={_num(v)}" for k, v in items[:max_values])
        else:
            items = list(rec.get("values") or ())
            shown = ", ".join(_num(v) for v in items[:max_values])
        more = ", ..." if len(items) > max_values else ""
        return f"{name} [{shown}{more}]{unit}"
    return name
