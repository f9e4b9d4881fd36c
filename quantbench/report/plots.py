"""The report's figures, drawn from a Results object alone with matplotlib (Agg), as PNG bytes."""
from __future__ import annotations

import io
from dataclasses import dataclass

from ..record.results import REFERENCE, Results, Variant

# file names, fixed so a report can refuse to overwrite before drawing; without labels the y axis is agreement
NAMES = {"size": "accuracy_vs_size.png", "latency": "accuracy_vs_latency.png", "distribution": "latency.png",
         "calibration": "calibration_sizes.png", "arena": "accuracy_vs_arena.png"}
BOX = "#1b6ca8"


@dataclass(frozen=True)
class Figure:
    """One PNG of the report, with the text that stands for it."""

    name: str      # file name in the study folder
    title: str
    alt: str       # what the figure shows, for screen readers and broken images
    caption: str
    png: bytes


def _new_figure(width=7.0, height=4.2):
    from matplotlib.figure import Figure as MplFigure  # no pyplot: no global state, Agg canvas

    fig = MplFigure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: same input, same bytes
    return buf.getvalue()


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which (cost, quality) points no other point beats: lower or equal cost and higher or equal quality."""
    return [not any(c2 <= c and q2 >= q and (c2 < c or q2 > q) for c2, q2 in points) for c, q in points]


def _quality(v: Variant, labels: bool):
    """(value %, [lo, hi] % or None) on the plots' y axis: accuracy with labels, else agreement."""
    if labels:
        if v.accuracy is None:
            return None, None
        ci = [100 * c for c in v.accuracy_ci] if v.accuracy_ci else None
        return 100 * v.accuracy, ci
    return (None if v.agreement is None else 100 * v.agreement), None


MARKERS = "osD^vP*Xph<>"
REC = "#b4451f"  # the recommended variant, in every plot (the report's badge has the same colour)


def _chosen(results: Results) -> str | None:
    """The recommended technique, or None."""
    return (results.recommendation or {}).get("technique")


def _ring(ax, x: float, y: float, name: str) -> None:
    """Marks the recommended variant in a scatter plot: a ring around its marker and the word above it."""
    ax.plot(x, y, "o", markersize=20, markerfacecolor="none", markeredgecolor=REC, markeredgewidth=2, zorder=4,
            label=f"recommended: {name}")
    ax.annotate("recommended", (x, y), xytext=(0, 13), textcoords="offset points", ha="center", va="bottom",
                color=REC, fontsize=8, fontweight="bold", zorder=5)


def _marked(results: Results, shown: list[str], how: str) -> str:
    """The caption's sentence about the recommended variant: where it is marked, or why it is not there."""
    name = _chosen(results)
    if name is None:
        return " No variant is recommended." if results.recommendation else ""
    return f" {how} the recommended variant, {name}." if name in shown else \
        f" The recommended variant, {name}, has no point here."


def _style(i: int) -> tuple[str, str]:
    """A colour and a marker per variant, the same in every plot, told apart even where points overlap."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if i < 10 else "tab20"]
    return cmap(i % cmap.N), MARKERS[i % len(MARKERS)]


def _plain_log_axis(axis) -> None:
    """Log scale with ticks at 1-2-5 steps, written as plain numbers (0.05, not 5×10⁻²)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def quality_vs(results: Results, cost: str) -> Figure | None:
    """Accuracy (or agreement) against size or batch-1 latency, error bars from the 95 % intervals."""
    labels = any(v.accuracy is not None for v in results.variants)
    rows = []
    for v in results.variants:
        if not v.ok or v.technique == REFERENCE:
            continue
        y, y_ci = _quality(v, labels)
        if cost == "size":
            x, x_ci = (v.bytes / 1024 if v.bytes else None), None
        else:
            lat = v.latency_ms or {}
            x, x_ci = lat.get("median"), lat.get("ci95")
        if x is not None and y is not None and x > 0:
            rows.append((v.technique, x, x_ci, y, y_ci))
    if not rows:
        return None
    names, xs, x_cis, ys, y_cis = map(list, zip(*rows))
    order = {v.technique: i for i, v in enumerate(results.variants)}
    front = pareto_front(list(zip(xs, ys)))
    fig, ax = _new_figure(width=8.4)
    for i in range(len(rows)):
        xerr = [[xs[i] - x_cis[i][0]], [x_cis[i][1] - xs[i]]] if x_cis[i] else None
        yerr = [[ys[i] - y_cis[i][0]], [y_cis[i][1] - ys[i]]] if y_cis[i] else None
        color, marker = _style(order[names[i]])
        ax.errorbar(xs[i], ys[i], xerr=xerr, yerr=yerr, fmt=marker, color=color, ecolor=color, elinewidth=1,
                    alpha=0.9, capsize=3, markersize=8, markeredgewidth=1.5,
                    markerfacecolor=color if front[i] else "white", zorder=3,
                    label=names[i] + (" (front)" if front[i] else ""))
    if _chosen(results) in names:
        i = names.index(_chosen(results))
        _ring(ax, xs[i], ys[i], names[i])
    on_front = sorted((xs[i], ys[i]) for i in range(len(rows)) if front[i])
    ax.step([p[0] for p in on_front], [p[1] for p in on_front], where="post", color="#555", linestyle="--",
            linewidth=1, zorder=2, label="Pareto front")
    what = "accuracy" if labels else "top-1 agreement with the Keras model"
    size = cost == "size"
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("size, KB (log scale)" if size else "batch-1 latency, ms per sample (log scale)")
    ax.set_ylabel(f"{what} (%)")
    ax.margins(x=0.08, y=0.12)  # markers at the extremes stay whole
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False, borderaxespad=0)
    title = f"{what[0].upper()}{what[1:]} vs {'size' if size else 'latency'}"
    ax.set_title(title, fontsize=11)
    intervals = (["Wilson for accuracy"] if labels else []) + ([] if size else ["order statistics for the median"])
    caption = (f"Each variant's {what} against its {'size' if size else 'median latency'}"
               f"{' (95 % intervals: ' + ', '.join(intervals) + ')' if intervals else ''}. "
               "Filled markers are on the Pareto front of the point estimates: no other variant is both "
               f"{'smaller' if size else 'faster'} and {'more accurate' if labels else 'more faithful'}. "
               "Where error bars overlap, the difference is not established. The Keras model is left out: "
               "it is the reference, not a file to ship." + _marked(results, names, "The ringed point is"))
    alt = f"Scatter plot of {what} against {'file size' if size else 'latency'} for " + \
        ", ".join(f"{n}{' (recommended)' if n == _chosen(results) else ''} ({x:.3g} {'KB' if size else 'ms'}, "
                  f"{y:.2f} %)" for n, x, y in zip(names, xs, ys))
    return Figure(NAMES[cost], title, alt, caption, _png(fig))


def latency_distribution(results: Results) -> Figure | None:
    """Box plots of batch-1 latency per variant from the stored quantiles; notches are the median's 95 % CI."""
    stats, names = [], []
    for v in results.variants:
        q = (v.latency_ms or {}).get("quantiles") if v.ok else None
        if not q:
            continue
        ci = v.latency_ms.get("ci95") or [q["50"], q["50"]]
        stats.append({"label": v.technique, "med": q["50"], "q1": q["25"], "q3": q["75"],
                      "whislo": q["1"], "whishi": q["99"], "fliers": [q["0"], q["100"]],
                      "cilo": ci[0], "cihi": ci[1]})
        names.append(v.technique)
    if not stats:
        return None
    fig, ax = _new_figure(height=0.45 * len(stats) + 1.4)
    chosen = _chosen(results)
    for s in stats:
        s["label"] += " (recommended)" if s["label"] == chosen else ""
    drawn = ax.bxp(stats[::-1], orientation="horizontal", shownotches=True, patch_artist=True, widths=0.6,
                   boxprops={"facecolor": "#dbe8f3", "edgecolor": BOX}, medianprops={"color": "#b4451f"},
                   flierprops={"marker": ".", "markersize": 4, "markeredgecolor": "#666"})
    for box, s, tick in zip(drawn["boxes"], stats[::-1], ax.get_yticklabels()):
        if s["label"].endswith(" (recommended)"):  # its box filled and its name in the recommended colour
            box.set(facecolor="#f6d5c8", edgecolor=REC, linewidth=2)
            tick.set(color=REC, fontweight="bold")
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("ms per sample, batch 1 (log scale)")
    ax.grid(True, axis="x", which="both", alpha=0.25)
    n = next(v.latency_ms.get("n") for v in results.variants if v.technique == names[0])
    title = f"Batch-1 latency over {n} interleaved rounds"
    ax.set_title(title, fontsize=11)
    caption = ("Box: 25th–75th percentile; notch: 95 % interval of the median; whiskers: 1st and 99th "
               "percentiles; dots: fastest and slowest call. The variants were timed in interleaved rounds, "
               "so load from other processes hit all of them alike." +
               _marked(results, names, "The box in the recommended colour, its name in bold, is"))
    alt = "Box plots of batch-1 latency: " + ", ".join(
        f"{s['label']} median {s['med']:.3g} ms (p1 {s['whislo']:.3g}, p99 {s['whishi']:.3g})" for s in stats)
    return Figure(NAMES["distribution"], title, alt, caption, _png(fig))


def calibration_sizes(results: Results) -> Figure | None:
    """int8-only accuracy (or agreement) against the number of calibration samples, with intervals."""
    study = (results.studies or {}).get("calibration_sizes")
    rows = [r for r in (study or {}).get("rows", []) if "error" not in r]
    if not rows:
        return None
    labels = all(r.get("accuracy") is not None for r in rows)
    if not labels and any(r.get("agreement") is None for r in rows):
        return None  # neither accuracy nor agreement (outputs that are not classes): nothing to draw
    xs = [r["samples"] for r in rows]
    ys = [100 * (r["accuracy"] if labels else r["agreement"]) for r in rows]
    fig, ax = _new_figure(6.0, 3.6)
    if labels:
        lo = [y - 100 * r["accuracy_ci"][0] for y, r in zip(ys, rows)]
        hi = [100 * r["accuracy_ci"][1] - y for y, r in zip(ys, rows)]
        ax.errorbar(xs, ys, yerr=[lo, hi], color=BOX, marker="o", capsize=3)
    else:
        ax.plot(xs, ys, color=BOX, marker="o")
    chosen = next((v for v in results.variants if v.technique == _chosen(results) and v.ok), None)
    level = _quality(chosen, labels)[0] if chosen else None
    if level is not None:  # the curve read against what the recommended variant reaches
        ax.axhline(level, color=REC, linestyle="--", linewidth=1.5, label=f"recommended: {chosen.technique}, "
                   f"{level:.2f} %")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    metric = "accuracy %" if labels else "agreement with the float model %"
    ax.set_xlabel("calibration samples")
    ax.set_ylabel(f"{study['technique']} {metric}")
    ax.grid(alpha=0.3)
    title = "int8 accuracy against calibration samples"
    caption = (f"{study['technique']} re-converted with each number of calibration samples (a seeded draw), "
               "evaluated on the same samples as the table; bars are 95 % Wilson intervals." +
               (f" The dashed line is the recommended variant, {chosen.technique}, at its {metric.rstrip(' %')} in "
                "the table." if level is not None else _marked(results, [], "")))
    alt = "Line plot: " + ", ".join(f"{x} samples {y:.2f} %" for x, y in zip(xs, ys))
    return Figure(NAMES["calibration"], title, alt, caption, _png(fig))


def arena(results: Results) -> Figure | None:
    """TFLite Micro's own accuracy (or agreement with the float model) against the tensor arena (RAM)."""
    rows = [v for v in results.variants if v.mcu and v.mcu["runs"]]
    labels = any(v.mcu.get("accuracy") is not None for v in rows)
    key = "accuracy" if labels else "agreement_float"
    rows = [v for v in rows if v.mcu.get(key) is not None]
    if not rows:
        return None
    order = {v.technique: i for i, v in enumerate(results.variants)}
    fig, ax = _new_figure(width=8.4)
    for v in rows:
        x, y = v.mcu["arena_bytes"] / 1024, 100 * v.mcu[key]
        color, marker = _style(order[v.technique])
        if v.mcu["wrong"]:
            ax.plot(x, y, "x", color="#b4451f", markersize=10, markeredgewidth=2, zorder=3,
                    label=f"{v.technique} (wrong on TFLite Micro)")
        else:
            ax.plot(x, y, marker, color=color, markersize=8, zorder=3, label=v.technique)
        if v.technique == _chosen(results):
            _ring(ax, x, y, v.technique)
    what = "accuracy on TFLite Micro" if labels else "top-1 agreement with the float model on TFLite Micro"
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("tensor arena (RAM), KB (log scale)")
    ax.set_ylabel(f"{what} (%)")
    ax.margins(x=0.08, y=0.12)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False, borderaxespad=0)
    title = f"{what[0].upper()}{what[1:]} vs RAM"
    ax.set_title(title, fontsize=11)
    n = rows[0].mcu.get("samples")
    refused = [v.technique for v in results.variants if v.mcu and not v.mcu["runs"]]
    caption = (f"Each variant that runs on TFLite Micro: its {what} over {n} samples against the smallest tensor "
               "arena it runs in (x86-64 build: an upper bound on a 32-bit microcontroller). A red cross marks a "
               "variant whose outputs depart from LiteRT's, never recommended."
               + (f" Not shown, TFLite Micro cannot run them: {', '.join(refused)}." if refused else "")
               + _marked(results, [v.technique for v in rows], "The ringed point is"))
    alt = f"Scatter plot of {what} against tensor arena size for " + ", ".join(
        f"{v.technique}{' (recommended)' if v.technique == _chosen(results) else ''} "
        f"({v.mcu['arena_bytes'] / 1024:.3g} KB, {100 * v.mcu[key]:.2f} %)" for v in rows)
    return Figure(NAMES["arena"], title, alt, caption, _png(fig))


def figures(results: Results) -> list[Figure]:
    """Every figure the results allow, in report order."""
    made = [quality_vs(results, "size"), quality_vs(results, "latency"), arena(results), latency_distribution(results),
            calibration_sizes(results)]
    return [f for f in made if f is not None]
