"""Two studies side by side: `quantbench report A/results.json B/results.json`.

Reads the two Results objects only. Each technique gets its accuracy and batch-1 latency from both runs,
with their 95 % intervals and whether those overlap; what differs between the runs (model, data,
machine, settings) is listed first, because it decides what the table can say.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.files import check_new_file, write_file
from ..record.results import Results, Variant
from .report import latency_text, md_cell, pct_ci

NAME = "comparison.md"
SETTINGS = ("calib_size", "seed", "epochs", "qat_epochs", "threads", "batch", "time_budget_s", "target", "optimize",
            "max_drop_pp")
ALIKE = 0.15  # latency ratios within ±15 % of their median: every file moved alike (the machine, not the files)


def _overlap(a: list | None, b: list | None) -> bool | None:
    if not a or not b:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def _mark(same: bool | None) -> str:
    return "—" if same is None else ("yes" if same else "**no**")


def _model(r: Results) -> str:
    m = r.model
    shapes = ", ".join(str(i.get("shape")) for i in m.get("inputs") or [])
    return f"{m.get('name', '?')} ({m.get('format', '?')}), input {shapes}"


def _data(r: Results) -> str:
    d = r.data
    return f"{d.get('eval_samples', '?')} samples, {d.get('eval_from', '?')}" + ("" if d.get("labels") else ", no labels")


def _machine(r: Results) -> str:
    m = r.machine
    return f"{m.get('cpu', '?')}, {m.get('threads', '?')} thread(s), LiteRT {m.get('litert', '?')}"


def _recommended(r: Results) -> str:
    return (r.recommendation or {}).get("technique") or "none"


def overview(a: Results, b: Results) -> list[tuple[str, str, str]]:
    """(what, A, B) for the facts that decide what the table can say."""
    return [("model", _model(a), _model(b)), ("evaluated on", _data(a), _data(b)),
            ("machine", _machine(a), _machine(b)), ("quantbench", a.quantbench_version, b.quantbench_version),
            ("recommended", _recommended(a), _recommended(b))]


def differences(a: Results, b: Results) -> list[str]:
    """What differs between the runs, in sentences: each one limits a comparison."""
    out = []
    facts = {what: (x, y) for what, x, y in overview(a, b)}
    if facts["model"][0] != facts["model"][1]:
        out.append(f"The models differ ({facts['model'][0]} against {facts['model'][1]}): no row compares like "
                   "with like.")
    if facts["evaluated on"][0] != facts["evaluated on"][1]:
        out.append("The evaluation data differ: accuracies come from different samples.")
    if facts["machine"][0] != facts["machine"][1]:
        out.append("The machines differ: latencies compare machines as much as variants.")
    changed = [f"{k} {a.settings.get(k)} → {b.settings.get(k)}" for k in SETTINGS
               if a.settings.get(k) != b.settings.get(k)]
    if changed:
        out.append("Settings changed: " + "; ".join(changed) + ".")
    return out


def _cells(v: Variant | None, fn) -> str:
    if v is None:
        return "absent"
    return fn(v) if v.ok else v.status


def rows(a: Results, b: Results) -> tuple[list[str], list[list[str]], dict]:
    """The table's headers and rows (techniques of A, then B's others), and counts for the summary."""
    order = [v.technique for v in a.variants] + [v.technique for v in b.variants
                                                 if v.technique not in {w.technique for w in a.variants}]
    found = {name: ({v.technique: v for v in a.variants}.get(name), {v.technique: v for v in b.variants}.get(name))
             for name in order}
    headers = ["technique", "accuracy % A", "accuracy % B", "overlap", "ms/sample A", "ms/sample B", "B ÷ A", "overlap",
               "KB A", "KB B"]
    table, acc, lat, ratios = [], [], [], []
    for name, (x, y) in found.items():
        both = x is not None and y is not None and x.ok and y.ok
        same_acc = _overlap(x.accuracy_ci, y.accuracy_ci) if both else None
        lx, ly = (x.latency_ms or {}, y.latency_ms or {}) if both else ({}, {})
        same_lat = _overlap(lx.get("ci95"), ly.get("ci95"))
        ratio = ly["median"] / lx["median"] if lx.get("median") and ly.get("median") else None
        acc += [] if same_acc is None else [same_acc]
        lat += [] if same_lat is None else [same_lat]
        ratios += [] if ratio is None else [ratio]
        by = [run for run, res in (("A", a), ("B", b)) if _recommended(res) == name]
        label = name + (f" (recommended by {' and '.join(by)})" if by else "")
        table.append([label, _cells(x, pct_ci), _cells(y, pct_ci), _mark(same_acc), _cells(x, latency_text),
                      _cells(y, latency_text), "—" if ratio is None else f"{ratio:.2f}", _mark(same_lat),
                      _cells(x, _kb), _cells(y, _kb)])
    return headers, table, {"accuracy": acc, "latency": lat, "ratios": ratios}


def _kb(v: Variant) -> str:
    return "—" if v.bytes is None else f"{v.bytes / 1024:.1f}"


def summary(counts: dict) -> list[str]:
    """How many intervals overlap, and whether the latencies all moved alike."""
    out = []
    for what in ("accuracy", "latency"):
        marks = counts[what]
        if marks:
            out.append(f"{what.capitalize()} intervals overlap for {sum(marks)} of {len(marks)} techniques.")
    ratios = np.asarray(counts["ratios"])
    if len(ratios) >= 3 and not all(counts["latency"]):
        mid = float(np.median(ratios))
        if np.all(np.abs(ratios / mid - 1) <= ALIKE):
            out.append(f"Every latency moved alike (B ÷ A {ratios.min():.2f}–{ratios.max():.2f}, median {mid:.2f}): "
                       "that points at the machine running at another speed, not at the variants. Compare variants within "
                       "one run.")
    return out


def markdown(a: Results, b: Results, labels: tuple[str, str]) -> str:
    """The comparison as Markdown: what the runs are, what differs, the table, the summary."""
    headers, table, counts = rows(a, b)
    lines = ["# Two quantbench studies side by side", "", "| | A | B |", "| --- | --- | --- |",
             f"| results | {md_cell(labels[0])} | {md_cell(labels[1])} |"]
    lines += [f"| {what} | {md_cell(x)} | {md_cell(y)} |" for what, x, y in overview(a, b)]
    notes = differences(a, b) or ["Same model, data, machine and settings."]
    lines += ["", *[f"- {n}" for n in notes], "", "| " + " | ".join(headers) + " |",
              "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in table]
    lines += ["", "Intervals are 95 %: accuracy Wilson, latency the median's (see the study reports).",
              *summary(counts), ""]
    return "\n".join(lines)


def side_by_side(paths: list, out=None, force: bool = False) -> tuple[str, Path | None]:
    """The comparison of two results.json files as Markdown, and the comparison.md written into `out` (if given)."""
    if len(paths) != 2:
        raise InputError(f"{len(paths)} results files given. Expected one (its report) or two (side by side). "
                         "Fix: pass one or two results.json files.")
    a, b = (Results.load(p) for p in paths)
    labels = (str(paths[0]), str(paths[1]))
    return markdown(a, b, labels), None if out is None else write(a, b, labels, out, force)


def write(a: Results, b: Results, labels: tuple[str, str], out: str | Path, force: bool = False) -> Path:
    """Write comparison.md into `out`; an existing one is refused without `force`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file. Expected a folder for {NAME}. Fix: choose another --out.")
    check_new_file(out / NAME, force, option="--out")
    return write_file(out / NAME, markdown(a, b, labels).encode(), force=force)
