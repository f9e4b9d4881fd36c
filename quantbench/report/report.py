"""Human-readable views of a Results object: the terminal table, report.md and report.html.

Everything here reads the Results object only, so `quantbench report results.json` re-renders a study
exactly as it was written.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from ..core.errors import InputError
from ..core.files import check_new_file, note_written, write_file
from ..engines.techniques import get, names
from ..measure.outputs import signed
from ..record.results import BASELINE, REFERENCE, Results, Variant
from .text import count_text, interval_text, ms_text

ALPHA = 0.05
NO_CHANGE = "no significant change"
# variants whose arithmetic is int8: the ones a CPU without int8 dot-product instructions may not speed up


# ---- cells -------------------------------------------------------------------------------------

def _pct(v):
    return "—" if v is None else f"{v * 100:.2f}"


def pct_ci(v: Variant) -> str:
    if v.accuracy is None:
        return "—"
    ci = f" ({v.accuracy_ci[0] * 100:.1f}–{v.accuracy_ci[1] * 100:.1f})" if v.accuracy_ci else ""
    return f"{v.accuracy * 100:.2f}{ci}"


def latency_text(v: Variant) -> str:
    lat = v.latency_ms or {}
    return interval_text(lat, "median") if "median" in lat else "—"


def _throughput(v: Variant, with_ci: bool = False) -> str:
    t = v.throughput
    if not t:
        return "—"
    return interval_text(t, "samples_per_s") if with_ci else count_text(t["samples_per_s"])


def change(v: Variant) -> str:
    """The accuracy change against float32 in words: no bare delta where the test finds none."""
    if v.technique == BASELINE:
        return "baseline"
    if v.p_vs_float32 is None:
        return "—" if v.accuracy_delta_pp is None else f"{signed(v.accuracy_delta_pp)} pp (untested)"
    if v.p_vs_float32 >= ALPHA:
        return NO_CHANGE
    return f"{signed(v.accuracy_delta_pp)} pp (p = {v.p_vs_float32:.2g})"


def _sqnr(v: Variant) -> str:
    if v.technique == REFERENCE:
        return "ref."
    if v.sqnr_db is None:  # measured (it has per-output figures), and the outputs were identical
        return "∞" if (v.fidelity or v.outputs or v.agreement is not None) else "—"
    return f"{v.sqnr_db:.1f}"


def _p(v: Variant) -> str:
    return "—" if v.p_vs_float32 is None or v.technique == BASELINE else f"{v.p_vs_float32:.2g}"


def _batch(results: Results) -> str:
    t = next((v.throughput for v in results.variants if v.throughput), None)
    return str(t["batch"]) if t else "B"


def _mcu_state(m: dict) -> str | None:
    """'refused', 'crashed' or 'wrong' for a variant that cannot ship to TFLite Micro; None if it can."""
    if not m["runs"]:
        return "crashed" if "crashed" in (m.get("reason") or "") else "refused"
    return "wrong" if m["wrong"] else None


def _ram(v: Variant) -> str:
    if not v.mcu:
        return "—"
    state = _mcu_state(v.mcu)
    if state and not v.mcu["runs"]:
        return state
    return f"{v.mcu['arena_bytes'] / 1024:.1f}" + (" wrong" if state else "")


def _flash(v: Variant) -> str:
    return "—" if not v.mcu or not v.mcu["runs"] else f"{v.mcu['flash_bytes'] / 1024:.1f}"


def io_text(v: Variant) -> str:
    """Input and output dtypes, each kind once: "int8", "float32→int8"; several tensors alike, "float32"."""
    ins, outs = ("/".join(dict.fromkeys((d or "?").split(","))) for d in (v.input_dtype, v.output_dtype))
    return ins if ins == outs else f"{ins}→{outs}"


def has_mcu(results: Results) -> bool:
    return any(v.mcu for v in results.variants)


def scored_outputs(results: Results) -> list[tuple[str, str, str]]:
    """(output, task, metric) of every scored output, from the reference row; [] for a study whose one output is
    a labelled class output (its accuracy columns say it all) or that has no per-output rows."""
    ref = next((v for v in results.variants if v.ok and v.outputs), None)
    if ref is None:
        return []
    found = [(o["output"], o["task"], o["metric"]) for o in ref.outputs if o.get("scored", True)]
    return [] if len(found) == 1 and found[0][2] == "accuracy" else found


def _figure(o: dict | None) -> str:
    """One output's deciding figure, compact: accuracy or agreement %, F1, MAE with its change, SQNR dB."""
    if o is None:
        return "—"
    m, value = o["metric"], o.get("value")
    if m == "sqnr_db":
        return "∞" if value is None else f"{value:.1f}"
    if m in ("accuracy", "agreement"):
        return "—" if value is None else f"{value * 100:.2f}"
    if m == "mae":
        change = "" if not o.get("loss") else f" ({o['loss']:+.1f} %)".replace("(-0.0 %)", "(+0.0 %)")
        return f"{value:.4g}{change}"
    return f"{value:.4g}"


UNITS = {"accuracy": "acc %", "agreement": "agree %", "f1": "F1", "mae": "MAE", "sqnr_db": "SQNR dB",
         "metric": "metric"}


def _output_columns(results: Results) -> list:
    """A column per scored output with its deciding figure, where the model is more than one class output."""
    cols = []
    for name, _, metric in scored_outputs(results):
        label = "your metric" if name == "*" else name

        def cell(v, name=name):
            return _figure(next((o for o in v.outputs or [] if o["output"] == name), None))
        cols.append((f"{label}\n{UNITS.get(metric, metric)}", cell, "report"))  # the terminal: deciding_columns
    return cols


# One column each: header, cell, and where it shows: "both", "terminal" (compact) or "report" (full, also the
# terminal's --wide). The compact table holds what a user decides with (issue 24): the deciding figure of every
# judged output with its interval and a significance mark, size, latency, I/O; one line per variant.
def _columns(results: Results, intervals: bool = True, spread: bool = True):
    base = next((v.bytes for v in results.variants if v.technique == BASELINE and v.ok), None)
    mcu = [("MCU RAM\nKB", _ram, "both"), ("MCU flash\nKB", _flash, "both")] if has_mcu(results) else []
    # for a microcontroller the terminal shows RAM and flash in the width host timings took; the report has both
    timing = "report" if mcu else "both"
    return [
        ("technique", lambda v: v.technique, "both"),
        ("engine", lambda v: v.engine, "report"),
        *deciding_columns(results, intervals),
        ("accuracy %\n(95% CI)", pct_ci, "report"),
        ("vs float32", change, "report"),
        *_output_columns(results),
        ("p (McNemar)", _p, "report"),
        ("agree %", lambda v: _pct(v.agreement), "report"),
        ("SQNR\ndB", _sqnr, "report"),
        ("KL", lambda v: "—" if v.kl is None else f"{v.kl:.2g}", "report"),
        ("KB", lambda v: "—" if v.bytes is None else f"{v.bytes / 1024:.1f}", "both"),
        ("size", lambda v: f"{v.bytes / base:.2f}×" if base and v.bytes else "", "both"),
        *mcu,
        ("ms/sample", lambda v: latency_short(v, spread), "terminal" if timing == "both" else "none"),
        ("ms/sample\n(95% CI)", latency_text, "report"),
        ("p90 / p99 ms", lambda v: f"{ms_text(v.latency_ms['p90'])} / {ms_text(v.latency_ms['p99'])}"
         if v.latency_ms and "p99" in v.latency_ms else "—", "report"),
        (f"samples/s @{_batch(results)} (95% CI)", lambda v: _throughput(v, True), "report"),
        ("I/O", io_text, "both"),
        ("convert s", lambda v: "" if v.convert_s is None else f"{v.convert_s:.2f}", "report"),
        ("memory MB", lambda v: "—" if v.memory_bytes is None else f"{v.memory_bytes / 2 ** 20:.1f}", "report"),
    ]


def table(results: Results, full: bool = False, intervals: bool = True,
          spread: bool = True) -> tuple[list[str], list[list[str]]]:
    """Headers and rows as strings: compact for the terminal, or `full` with the report's extra columns.

    A failed variant shows its status in the first column after its name (and engine); `failures` lists the
    reasons. `intervals` and `spread`: the compact table's deciding intervals and latency spread, left out
    only where a narrow terminal needs the width (`rich_table`).
    """
    cols = [c for c in _columns(results, intervals, spread) if c[2] in ("both", "report" if full else "terminal")]
    headers = [c[0].replace("\n", " ") if full else c[0] for c in cols]  # two-line headers in the terminal
    rows = []
    named = 2 if full else 1  # technique (and engine, in the full table)
    for v in results.variants:
        if not v.ok:
            rows.append([v.technique, v.engine][:named] + [v.status] + [""] * (len(cols) - named - 1))
        else:
            rows.append([fn(v) for _, fn, _ in cols])
    keep = [i for i, h in enumerate(headers) if h or any(r[i] for r in rows)]  # a mark column with no mark: out
    return [headers[i] for i in keep], [[r[i] for i in keep] for r in rows]


# ---- the compact table's deciding columns ------------------------------------------------------------

HEADS = {"accuracy": "accuracy %", "agreement": "agreement %", "f1": "F1", "mae": "MAE", "sqnr_db": "SQNR dB"}
TESTS = {"accuracy": "exact McNemar test", "f1": "paired bootstrap", "mae": "Wilcoxon signed-rank test"}
INTERVALS = {"accuracy": "Wilson", "agreement": "Wilson", "f1": "bootstrap", "mae": "bootstrap"}
WHAT = {"accuracy": "accuracy", "agreement": "agreement", "f1": "F1", "mae": "MAE"}
MARKS = {"same": "≈", "worse": "▼", "better": "▲"}


def _reference_row(results: Results) -> Variant | None:
    """The float model every figure is measured against (keras, else float32), or None when neither ran."""
    return next((v for name in (REFERENCE, BASELINE) for v in results.variants if v.technique == name and v.ok),
                None)


def deciding(results: Results) -> list[dict]:
    """The reference row's scored outputs: what the recommendation judges, one compact column each."""
    from ..measure.outputs import scored_outputs as judged

    ref = _reference_row(results)
    return [] if ref is None else [o for o in judged(ref, ref, results) if o.get("scored", True)]


def _scored(results: Results, v: Variant, name: str) -> dict | None:
    from ..measure.outputs import scored_outputs as judged

    ref = _reference_row(results)
    return next((o for o in judged(v, ref, results) if o["output"] == name), None)


def decider_text(o: dict | None, reference: bool = False, intervals: bool = True) -> str:
    """An output's deciding figure as the compact table shows it, "96.44 (94.3–97.9)": percent for accuracy
    and agreement, 4 significant digits otherwise; its interval at a digit less; "ref." for fidelity figures of
    the reference itself."""
    if o is None:
        return "—"
    m, value, ci = o["metric"], o.get("value"), o.get("ci") if intervals else None
    if reference and m in ("agreement", "sqnr_db"):
        return "ref."
    if m == "sqnr_db":
        return "∞" if value is None else f"{value:.1f}"
    if value is None:
        return "—"
    scale, text = (100, f"{value * 100:.2f}") if m in ("accuracy", "agreement") else (1, f"{value:.4g}")
    if not ci:
        return text
    if "e" in text:
        return f"{text} ({ci[0]:.3g}–{ci[1]:.3g})"
    decimals = max(0, len(text.partition(".")[2]) - 1)  # a digit less than the value's
    return f"{text} ({ci[0] * scale:.{decimals}f}–{ci[1] * scale:.{decimals}f})"


def significance(o: dict | None) -> str | None:
    """"same", "worse" or "better" against the float model by the output's paired test at ALPHA; None
    without a test (fidelity figures, your own metric, the reference itself)."""
    if o is None or o.get("p") is None:
        return None
    if o["p"] >= ALPHA:
        return "same"
    return "worse" if (o.get("loss") or 0) > 0 else "better"


def deciding_columns(results: Results, intervals: bool = True) -> list:
    """Per judged output: its deciding figure with its interval, then its significance mark (terminal only)."""
    ref = _reference_row(results)
    found = deciding(results)
    cols = []
    for first in found:
        name, metric = first["output"], first["metric"]
        label = (first.get("name") or "your metric") if name == "*" else name
        head = HEADS.get(metric, label) if len(found) == 1 else f"{label}\n{UNITS.get(metric, metric)}"

        def value(v, name=name):
            return decider_text(_scored(results, v, name), v is ref, intervals)

        def mark(v, name=name):
            return "" if v is ref else MARKS.get(significance(_scored(results, v, name)), "")
        cols += [(head, value, "terminal"), ("", mark, "terminal")]
    return cols


def latency_short(v: Variant, spread: bool = True) -> str:
    """Median ms at batch 1 and the wider side of its 95 % interval in %, "0.00766 ±0.6%"; "(n = k)" without one."""
    lat = v.latency_ms or {}
    if "median" not in lat:
        return "—"
    median, ci = lat["median"], lat.get("ci95")
    if not spread:
        return ms_text(median)
    if not ci:
        return ms_text(median) + (f" (n = {lat['n']})" if lat.get("n") is not None else "")
    half = max(ci[1] - median, median - ci[0]) / median * 100 if median > 0 else 0.0
    return f"{ms_text(median)} ±{half:.1f}%" if half < 9.95 else f"{ms_text(median)} ±{half:.0f}%"


def failures(results: Results) -> list[str]:
    """One line per meaningless figure (a degenerate float model), then per reason variants did not convert:
    "dynamic, float16 and int16x8 skipped: cannot serve --target int-only: ..." once, not once per variant."""
    reasons = {}
    for v in results.variants:
        if not v.ok:
            reasons.setdefault((v.status, v.error or "no reason given"), []).append(v.technique)
    return [f"Warning: {d['why']}." for d in results.degenerate_outputs] + \
        [f"{_names(names_)} {status}: {why}" for (status, why), names_ in reasons.items()]


def mcu_notes(results: Results) -> list[str]:
    """One line per variant that cannot ship to TFLite Micro, with the reason."""
    from ..measure.mcu import mcu_refusal

    return [f"{v.technique}: {mcu_refusal(v)}" for v in results.variants
            if v.mcu and _mcu_state(v.mcu)]


def kernel_notes(results: Results) -> list[str]:
    """One line per variant whose timing ran on LiteRT's built-in kernels because XNNPACK refused it."""
    from .text import builtin_kernels_note

    return [f"{v.technique}: {builtin_kernels_note(v.xnnpack_refused)}" for v in results.variants
            if v.xnnpack_refused]


def row_notes(results: Results) -> list[str]:
    """The lines under the table: failures, then what keeps a variant off a microcontroller or off XNNPACK."""
    return failures(results) + mcu_notes(results) + kernel_notes(results)


# ---- the terminal table --------------------------------------------------------------------------

LEFT = ("technique", "engine", "vs float32", "I/O", "")
# The compact table's forms, fullest first: (deciding intervals, latency spread, columns between cells). A
# terminal gets the first that fits its width; technique names and numbers are never cut.
FORMS = ((True, True, 2), (True, True, 1), (True, False, 1), (False, False, 1))


def _width(headers: list[str], rows: list[list[str]], gap: int) -> int:
    """The columns a table of these cells takes on one line per row."""
    from rich.cells import cell_len

    widths = [max([cell_len(part) for part in h.split("\n")] + [cell_len(r[i]) for r in rows])
              for i, h in enumerate(headers)]
    return sum(widths) + gap * (len(widths) - 1)


def compact_form(results: Results, width: int | None = None) -> tuple[bool, bool, int]:
    """The fullest of FORMS whose compact table fits `width` columns (the last one when none does)."""
    for intervals, spread, gap in FORMS:
        if width is None or _width(*table(results, intervals=intervals, spread=spread), gap) <= width:
            break
    return intervals, spread, gap


def terminal_table(results: Results, wide: bool = False, width: int | None = None):
    """The terminal table: compact, in the fullest form that fits `width` columns (any, when None), or `wide`:
    every column of the report. Returns a rich Table, the lines to print under it, and the width it takes on
    one line per row."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if wide:
        (headers, rows), gap = table(results, full=True), 2
        notes = [*row_notes(results), _table_note(results)]
    else:
        intervals, spread, gap = compact_form(results, width)
        headers, rows = table(results, intervals=intervals, spread=spread)
        notes = [*row_notes(results), *terminal_notes(results, intervals, spread, width)]
    # SIMPLE_HEAD divides columns by one space: `gap - 1` more of padding makes the `gap` _width counts. Text, not
    # markup: a name or an error with [brackets] in it is shown as it is
    t = Table(title=Text(_title(results)), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
              padding=(0, gap - 1, 0, 0))
    for h in headers:  # a cell too wide for a narrow terminal folds onto a second line; it is never cut
        t.add_column(Text(h), justify="left" if h in LEFT else "right", no_wrap=h == "technique", overflow="fold")
    for row in rows:
        t.add_row(*map(Text, row))
    return t, notes, _width(headers, rows, gap)


def terminal_notes(results: Results, intervals: bool = True, spread: bool = True, width: int | None = None) -> list:
    """The lines under the compact table: the marks, the intervals, the units, and where the rest is."""
    ref, found = _reference_row(results), deciding(results)
    _, rows = table(results, intervals=intervals, spread=spread)
    shown = {c for row in rows for c in row}
    metrics = list(dict.fromkeys(o["metric"] for o in found))

    def each(words: dict, which: list) -> str:  # "exact McNemar test", or "X for MAE, Y for accuracy"
        return ", ".join(words[m] + (f" for {WHAT[m]}" if len(which) > 1 else "") for m in which)
    with_ci = [m for m in metrics if m in INTERVALS and any(o["metric"] == m and o.get("ci") for o in found)]
    parts = [f"(a–b): the 95 % interval ({each(INTERVALS, with_ci)})."] if intervals and with_ci else []
    if ref is not None and shown & set(MARKS.values()):
        n = results.data.get("eval_samples")
        parts.append(f"{MARKS['same']} no significant change against {ref.technique} (the float model); "
                     f"{MARKS['worse']} / {MARKS['better']} significantly worse / better, p < {ALPHA} ("
                     + each(TESTS, [m for m in metrics if m in TESTS])
                     + (f", on the same {n} samples" if n else "") + ").")
    out = [" ".join(parts)] if parts else []
    m = results.machine
    units = "KB of 1,024 bytes; size against float32's"
    if not has_mcu(results):
        units += (f"; ms/sample: the median at batch 1" + (" ± the wider side of its 95 % interval" if spread else "")
                  + f", {_threads(m)} on {m.get('cpu', 'an unknown CPU')}")
        few = [v.technique for v in results.variants if v.latency_ms and "n" in v.latency_ms
               and not v.latency_ms.get("ci95")]
        if spread and few:
            units += (f"; (n = k) for {_names(few)}: only k timing rounds fit the time budget, too few for an "
                      "interval (a longer --time-budget gives more)")
    else:
        units += ("; MCU RAM: the smallest TFLite Micro tensor arena that runs the variant, MCU flash: its file, "
                  "measured on this host")
    out.append(units + ".")
    cut = [what for what, kept in (("the intervals", intervals), ("the latency spread", spread)) if not kept]
    out.append((f"Left out to fit {width} columns: {' and '.join(cut)}. " if cut else "")
               + "Every column (engine, p-values, agreement, SQNR, throughput, p90/p99, memory): --wide, and "
               "report.html.")
    return out


def print_table(results: Results, console, wide: bool = False) -> None:
    """The table on `console`, compact to its width (or `wide`, at its own width), then the recommendation."""
    t, notes, natural = terminal_table(results, wide, None if wide else console.width)
    width = console.width
    console.width = max(natural, width) if wide else width  # wide: one line per row, however long
    try:
        console.print(t)
    finally:
        console.width = width
    console.print()
    for line in [*notes, *([results.recommendation["summary"]] if results.recommendation else [])]:
        console.print(line, highlight=False, markup=False)


def techniques_table():
    """`quantbench techniques`: every technique under its engine, a mark per --target where `compare` runs it by
    default, and what it does, wrapped at word boundaries to the terminal's width. Returns a rich Table and the
    lines to print under it."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ..engines.targets import NOT_BY_DEFAULT, TARGETS, defaults

    runs = {target: set(defaults(target)) for target in TARGETS}
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    t.add_column("technique", no_wrap=True)
    for target in TARGETS:  # "int-only" on two lines: the width goes to what each one does
        t.add_column(target.replace("-", "-\n"), justify="center", no_wrap=True)
    t.add_column("what it does", ratio=1)
    engines = list(dict.fromkeys(get(n).engine for n in names()))
    for engine in engines:
        t.add_row(f"{engine}:", *[""] * len(TARGETS), "", style="bold")
        members = [n for n in names() if get(n).engine == engine]
        for name in members:
            t.add_row(f"  {name}", *("✓" if name in runs[target] else "" for target in TARGETS),
                      Text(get(name).summary), end_section=name == members[-1])
    extra = [f"{n}: {NOT_BY_DEFAULT[get(n).engine]}." for n in names() if get(n).engine in NOT_BY_DEFAULT]
    notes = [f"✓: `compare` and `demo` run it by default for that --target; --techniques a,b picks others, 'all' "
             "every one the target allows.", *extra]
    return t, notes


def _title(results: Results) -> str:
    return (f"quantbench — {results.model.get('name', 'model')} on {results.data.get('name', 'data')}"
            f" ({results.data.get('eval_samples')} samples)")


def _table_note(results: Results) -> str:
    m = results.machine
    mcu = (" MCU RAM: the smallest TFLite Micro tensor arena that runs the variant; MCU flash: its file; both "
           "in KB of 1,024 bytes, measured on this host (see the TFLite Micro section)." if has_mcu(results) else "")
    return (f"Intervals are 95 %: Wilson for accuracy; for the median latency, order statistics of the rounds "
            "and of the medians of 10 consecutive blocks of rounds, so the machine's speed drifting during the run "
            f"widens them. '{NO_CHANGE}': exact McNemar test against float32 on the same samples, p ≥ {ALPHA}. "
            f"Latency at batch 1, throughput at batch {_batch(results)}; {_threads(m)} on "
            f"{m.get('cpu', 'an unknown CPU')}. A shared machine can be slower or faster for longer than one run: "
            "compare variants within one run." + _few_rounds(results) + mcu)


def _few_rounds(results: Results) -> str:
    """The note for timings with too few rounds for a 95 % interval (bench.summarize), naming the figure each
    lacks it for (a table can show intervals for the latency of variants whose throughput has none), or ""."""
    parts = []
    for key, what in (("latency_ms", "latency"), ("throughput", "throughput")):
        timed = [v for v in results.variants if getattr(v, key)]
        few = [v.technique for v in timed if "n" in getattr(v, key) and not getattr(v, key).get("ci95")]
        if few:
            parts.append(f"the {what} of " + ("every variant" if len(few) == len(timed) > 1 else _names(few)))
    return (f" {_names(parts)[0].upper()}{_names(parts)[1:]}: 'n = k' instead of an interval, because only k "
            "timing rounds fit the time budget, too few for a 95 % interval (6 at least; a longer --time-budget "
            "gives more)." if parts else "")


def _threads(machine: dict) -> str:
    n = machine.get("threads", "?")
    return f"{n} thread" + ("" if n == 1 else "s")


# ---- the reading: plain sentences generated from the numbers -----------------------------------

def _faster(a: dict, b: dict) -> bool:
    """a's median latency is below b's with their 95 % intervals apart (never without both intervals)."""
    return bool(a.get("ci95") and b.get("ci95")) and a["ci95"][1] < b["ci95"][0]


def _paired(v, side: int, otherwise) -> bool:
    """With its per-round ratio to float32 (`vs_float32`, from the same rounds): is its interval wholly below 1
    (side -1: faster) or above (side 1: slower)? Without one: `otherwise()`, the two rows' intervals apart."""
    paired = v.latency_ms.get("vs_float32")
    if not paired:
        return otherwise()
    ci = paired.get("ci95")
    return bool(ci) and (ci[1] < 1 if side < 0 else ci[0] > 1)


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def recommended(results: Results) -> Variant | None:
    """The recommended variant's row; None when nothing is recommended (or the results hold no recommendation)."""
    name = (results.recommendation or {}).get("technique")
    return next((v for v in results.variants if v.technique == name and v.ok), None) if name else None


def _size(v: Variant, f32: Variant | None) -> str:
    """'23.1 KB (0.17× float32's 132.7 KB)', or '132.7 KB' for float32 itself or without it."""
    text = f"{v.bytes / 1024:.1f} KB"
    return text + (f" ({v.bytes / f32.bytes:.2f}× float32's {f32.bytes / 1024:.1f} KB)" if f32 and v is not f32 else "")


def _recommendation_line(results: Results, f32: Variant | None) -> str | None:
    """The reading's first bullet: the variant to ship, what it costs, what it loses, and the budget it meets; or,
    when nothing meets the budget, the recommendation's own words for that."""
    rec = results.recommendation
    if not rec:
        return None
    v = recommended(results)
    if v is None:
        return rec.get("summary") or "Nothing is recommended."
    lat = (v.latency_ms or {}).get("median")
    if v.mcu and v.mcu.get("runs") and rec.get("target") == "mcu":
        cost, least = (f"{v.mcu['arena_bytes'] / 1024:.1f} KB RAM + {v.mcu['flash_bytes'] / 1024:.1f} KB flash",
                       "the smallest in RAM plus flash")
    elif rec.get("optimize") == "latency" and lat is not None:
        cost, least = f"{ms_text(lat)} ms per sample at batch 1", "the fastest here"
    else:
        cost, least = (_size(v, f32) if v.bytes else "size unknown"), "the smallest"
    verdicts = rec.get("verdicts") or []
    several = len(verdicts) > 1
    figures = "; ".join(f"{o['output'] + ' ' if several else ''}{o['figure']}" for o in verdicts if o.get("figure"))
    held = "; ".join(f"{c['output'] + ': ' if several else ''}{c['criterion']}" for c in rec.get("criteria") or [])
    text = f"Recommended: {v.technique}, {cost}" + (f"; {figures} against the float model" if figures else "") + \
        f". It is {least} of the variants within the budget" + (f" ({held})" if held else "") + \
        (f" for --target {rec['target']}" if rec.get("target") else "") + "."
    if rec.get("uncertain"):
        text += " Uncertain: its interval reaches past the budget; measure on more data before relying on it."
    return text


def reading(results: Results) -> list[str]:
    """A short plain-language reading of the results: the recommendation first, then size, speed here, accuracy,
    fidelity, failures."""
    ok = [v for v in results.variants if v.ok and v.technique != REFERENCE]
    by = {v.technique: v for v in results.variants}
    f32 = by.get(BASELINE) if by.get(BASELINE) and by[BASELINE].ok else None
    m = results.machine
    first = _recommendation_line(results, f32)
    out = [first] if first else []
    if ok and all(v.bytes for v in ok):
        small = min(ok, key=lambda v: v.bytes)
        also = [v.technique for v in ok if v is not small and v.bytes <= 1.05 * small.bytes]
        chosen = " (the recommended variant)" if small is recommended(results) else ""
        text = f"Smallest: {small.technique}{chosen}, {_size(small, f32)}"
        text += f"; {_names(also)} within 5 % of it." if also else "."
        why = next((e["why"] for e in (results.recommendation or {}).get("excluded", [])
                    if e["technique"] == small.technique), None)
        out.append(text + (f" Not recommended: {why.rstrip('.')}." if why else ""))
    timed = [v for v in ok if v.latency_ms and "median" in v.latency_ms]
    if f32 and f32.latency_ms and timed:
        base = f32.latency_ms
        where = f"on this machine ({m.get('cpu', 'unknown CPU')}, {_threads(m)})"
        faster = [v for v in timed if v is not f32 and _paired(v, -1, lambda: _faster(v.latency_ms, base))]
        slower = [v for v in timed if v is not f32 and _paired(v, 1, lambda: _faster(base, v.latency_ms))]
        same = [v for v in timed if v is not f32 and v not in faster and v not in slower]

        def ratio(v):
            paired = v.latency_ms.get("vs_float32")  # measured in the same rounds as float32 (its timing group)
            r = 1 / paired["median"] if paired else base["median"] / v.latency_ms["median"]
            how = f"{r:.2f}× faster" if r >= 1 else f"{1 / r:.2f}× slower"
            return f"{v.technique} {ms_text(v.latency_ms['median'])} ms ({how})"
        parts = [f"At batch 1 {where}, float32 takes {ms_text(base['median'])} ms per sample."]
        if faster:
            parts.append(f"Faster: {_names([ratio(v) for v in faster])}.")
        if slower:
            parts.append(f"Slower: {_names([ratio(v) for v in slower])}.")
        if same:
            parts.append(f"No clear difference (95 % intervals overlap): {_names([v.technique for v in same])}.")
        out.append(" ".join(parts))
        int8 = [v for v in timed if v.technique in names() and get(v.technique).compute == "int8"]
        if int8 and not any(v in faster for v in int8):
            flags = ", ".join(s.upper() for s in m.get("simd", [])) or "unknown SIMD"
            if m.get("int8_dot") is False:
                sizes = sorted(v.bytes / f32.bytes for v in int8 if v.bytes and f32.bytes)
                size = f" (they are {sizes[0]:.2f}–{sizes[-1]:.2f}× float32's size)" if sizes else ""
                out.append(f"int8 is not faster than float here: this CPU ({flags}) has no int8 dot-product "
                           "instructions (VNNI on x86, dotprod on Arm), which is where int8 kernels usually get "
                           f"their speed. Here the int8 variants pay off in size{size}; on a CPU with VNNI or "
                           "dotprod, or on an integer accelerator, they are usually faster too.")
            else:
                known = " although this CPU has int8 dot-product instructions" if m.get("int8_dot") else ""
                out.append(f"int8 is not faster than float here{known}.")
        keras = by.get(REFERENCE)
        if keras and keras.ok and keras.latency_ms:
            out.append(f"The Keras model (TensorFlow, graph mode) takes {ms_text(keras.latency_ms['median'])} ms per "
                       f"sample: float32 LiteRT is {keras.latency_ms['median'] / base['median']:.1f}× faster.")
    rated = [v for v in ok if v.throughput]
    if rated:
        best = max(rated, key=lambda v: v.throughput["samples_per_s"])
        text = (f"At batch {best.throughput['batch']} the highest throughput is {best.technique}'s, "
                f"{count_text(best.throughput['samples_per_s'])} samples/s")
        if f32 and f32.throughput and best is not f32:
            text += f" (float32: {count_text(f32.throughput['samples_per_s'])})"
        out.append(text + ".")
    tested = [v for v in ok if v.p_vs_float32 is not None and v is not f32]
    if tested:
        worse = [v for v in tested if v.p_vs_float32 < ALPHA and v.accuracy_delta_pp < 0]
        better = [v for v in tested if v.p_vs_float32 < ALPHA and v.accuracy_delta_pp > 0]
        n = results.data.get("eval_samples") or "the"
        if worse:
            out.append("Lost accuracy significantly against float32: " + _names(
                [f"{v.technique} {signed(v.accuracy_delta_pp)} pp (p = {v.p_vs_float32:.2g})" for v in worse]) + ".")
        if better:
            out.append("Gained accuracy significantly: " + _names(
                [f"{v.technique} {signed(v.accuracy_delta_pp)} pp (p = {v.p_vs_float32:.2g})" for v in better]) + ".")
        if not worse and not better:
            out.append(f"No variant's accuracy differs significantly from float32's (exact McNemar test on the "
                       f"same {n} samples, p ≥ {ALPHA} for every one).")
        if f32 and f32.accuracy_ci:
            half = (f32.accuracy_ci[1] - f32.accuracy_ci[0]) * 50
            out.append(f"With {n} samples, float32's accuracy is known to about ±{half:.1f} pp (95 %); "
                       "smaller changes cannot be told from chance.")
    elif not any(v.accuracy is not None for v in ok):
        out.append("No labels were given: accuracy is replaced by fidelity to the Keras model.")
    faithful = [v for v in ok if v.agreement is not None]
    if faithful:
        worst = min(faithful, key=lambda v: (v.agreement, v.sqnr_db if v.sqnr_db is not None else float("inf")))
        sq = f", output SQNR {worst.sqnr_db:.1f} dB" if worst.sqnr_db is not None else ""
        out.append(f"Least faithful to the Keras model: {worst.technique}, top-1 agreement "
                   f"{worst.agreement * 100:.2f} %{sq}.")
    on_mcu = [v for v in ok if v.mcu]
    if on_mcu:
        right = [v for v in on_mcu if not _mcu_state(v.mcu)]
        text = f"On TFLite Micro, {len(right)} of {len(on_mcu)} variants run and compute what LiteRT computes"
        if right:
            least = min(right, key=lambda v: v.mcu["arena_bytes"])
            text += f"; the least RAM is {least.technique}'s, a {least.mcu['arena_bytes']:,}-byte tensor arena"
        wrong = [v.technique for v in on_mcu if _mcu_state(v.mcu) == "wrong"]
        if wrong:
            text += f"; {_names(wrong)} run{'s' if len(wrong) == 1 else ''} there but wrong"
        out.append(text + ".")
    failed = [v for v in results.variants if not v.ok]
    if failed:
        out.append("Did not convert: " + "; ".join(f"{v.technique} ({v.error or v.status})" for v in failed) + ".")
    return out


# ---- the machine block ------------------------------------------------------------------------

def machine_rows(results: Results) -> list[tuple[str, str]]:
    m, s = results.machine, results.settings
    dot = {True: "yes", False: "no", None: "unknown"}[m.get("int8_dot")]
    rows = [("CPU", f"{m.get('cpu', '?')} ({m.get('arch', '?')})"),
            ("SIMD", ", ".join(m.get("simd", [])) or "—"),
            ("int8 dot product (VNNI / dotprod)", dot),
            ("cores / threads used", f"{m.get('cores', '?')} / {m.get('threads', '?')}"),
            ("OS, Python", f"{m.get('os', '?')}, Python {m.get('python', '?')}"),
            ("LiteRT, TensorFlow, Keras", f"{m.get('litert')}, {m.get('tensorflow')}, {m.get('keras')}"),
            ("evaluation samples", f"{results.data.get('eval_samples', '?')}"
                                   f"{'' if results.data.get('labels', True) else ' (no labels)'}"),
            ("throughput batch", _batch(results))]
    calib = results.data.get("calibration")
    if calib:
        rows.append(("calibration", f"{calib.get('samples')} samples from the {calib.get('from')}"))
    # an option left unset (a budget not given, no --task) says nothing: no row for it; the batch, threads and
    # throughput batch have their rows above
    rows += [(k, str(v)) for k, v in s.items()
             if k not in ("threads", "batch", "throughput_batch", "memory") and v not in (None, {}, [])]
    mem = s.get("memory")
    if isinstance(mem, dict) and mem.get("budget_bytes"):
        groups = mem.get("timing_groups") or []
        rows.append(("memory", f"budget {mem['budget_bytes'] / 2 ** 30:.2f} GiB ({mem.get('budget_from', '?')}), "
                               f"peak {(mem.get('peak_bytes') or 0) / 2 ** 30:.2f} GiB; workers {mem.get('workers_ran')} "
                               f"of {mem.get('workers_asked')}; timed in {len(groups)} group"
                               f"{'' if len(groups) == 1 else 's'}"))
    rows.append(("quantbench", results.quantbench_version))
    return rows


# ---- Markdown and HTML ------------------------------------------------------------------------

def md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def sections(results: Results) -> list[tuple[str, list[str], list[str], list[list[str]]]]:
    """The recommendation and the studies beside the table: (title, paragraphs, headers, rows) each."""
    out = []
    rec = results.recommendation
    if rec:
        rows = [[r["technique"], "runner-up", r["why"]] for r in rec.get("runners_up", [])]
        rows += [[e["technique"], "excluded", e["why"]] for e in rec.get("excluded", [])]
        out.append(("Recommendation", [rec["summary"]], ["technique", "", "why"], rows))
        tree = rec.get("decision_tree", [])
        out.append(("Decision tree", [
            "Applied before measuring: a technique that cannot serve the target is not converted."],
            ["target", "question", "techniques", "why"],
            [[b["target"], b["question"], b["techniques"], b["why"]] for b in tree]))
    out += output_sections(results)
    if has_mcu(results):
        out.append(mcu_section(results))
    studies = results.studies or {}
    sel = studies.get("selective")
    if sel:
        text = ("No integer variant met the budget, so int8 was converted again with the layers that lose the "
                "most kept in float, adding one at a time in order of error. ")
        if "error" in sel:
            text += f"The converter refused: {sel['error']}"
        else:
            text += (f"{'Met' if sel['met'] else 'Not met'} with {len(sel['float_layers'])} float layer(s): "
                     f"{', '.join(sel['float_layers']) or 'none'} ({sel['conversions']} conversions, "
                     f"{sel['seconds']} s). The layers were chosen on the evaluation samples.")
        out.append(("Selective int8", [text], ["float layers", "bytes", "drop pp", "meets budget"],
                    [[", ".join(st["float_layers"]) or "none", f"{st['bytes']:,}", f"{st['drop_pp']:.2f}",
                      "yes" if st["ok"] else "no"] for st in sel.get("steps", [])]))
    errs = studies.get("layer_errors")
    if errs:
        out.append(("Per-layer int8 error", [
            f"TensorFlow's QuantizationDebugger on {errs.get('samples', 'the')} calibration samples, for "
            f"{', '.join(errs['techniques'])} "
            "(one int8 quantization): the layers with the largest error, RMSE over the output's scale first."
            + (f" The debugger failed: {errs['error']}" if errs.get("error") else "")],
            ["layer (output tensor)", "op", "RMSE / scale", "MSE", "elements"],
            [[r["name"], r["op"], "—" if r["rmse_over_scale"] is None else f"{r['rmse_over_scale']:.3g}",
              f"{r['mean_squared_error']:.3g}",
              str(r["num_elements"])] for r in errs["rows"]]))
    cal = studies.get("calibration_sizes")
    if cal:
        out.append(("Calibration samples", [
            f"{cal['technique']} converted with each number of calibration samples."],
            ["samples", "accuracy % (95% CI)", "agree %", "bytes"],
            [[str(r["samples"]), r.get("error") or ("—" if r["accuracy"] is None else
              f"{100 * r['accuracy']:.2f} ({100 * r['accuracy_ci'][0]:.1f}–{100 * r['accuracy_ci'][1]:.1f})"),
              "" if "error" in r else _pct(r["agreement"]), "" if "error" in r else f"{r['bytes']:,}"]
             for r in cal["rows"]]))
    return out


KIND_WORDS = {
    "classes": "class output: top-1 accuracy with its Wilson interval, the drop against the float model with its "
               "paired interval, exact McNemar test",
    "binary": "binary output: accuracy at the threshold (Wilson interval, paired drop interval, McNemar) and ROC AUC",
    "multilabel": "multi-label output: per-label F1 at the threshold, averaged, with paired bootstrap intervals "
                  "(1,000 resamples)",
    "regression": "regression output: MAE and RMSE; the MAE change in % of the float model's, with a paired "
                  "bootstrap interval (1,000 resamples) and a Wilcoxon signed-rank test",
    "fidelity": "judged by fidelity to the float model: SQNR (dB) and cosine similarity",
    "metric": "your own metric (--metric), higher is better",
}


def _value_ci(o: dict) -> str:
    """An output's deciding value with its 95 % interval, in the units the table shows."""
    value, ci = o.get("value"), o.get("ci")
    if value is None:
        return "∞" if o["metric"] == "sqnr_db" else "—"
    scale = 100 if o["metric"] in ("accuracy", "agreement") else 1
    digits = ".2f" if scale == 100 else ".4g"
    return f"{value * scale:{digits}}" + (f" ({ci[0] * scale:{digits}}–{ci[1] * scale:{digits}})" if ci else "")


def _change(o: dict) -> str:
    """The loss against the float model, signed as a gain (accuracy -0.40 pp; MAE +1.20 %), with its interval."""
    if o.get("loss") is None or o["metric"] == "sqnr_db":
        return "—"
    sign, unit = (1, " %") if o["metric"] == "mae" else (-1, " pp")
    text = signed(sign * o["loss"]) + unit
    if o.get("loss_ci"):
        lo, hi = sorted(sign * x for x in o["loss_ci"])
        text += f" ({signed(lo)} to {signed(hi)})"  # "–" between signed numbers reads as a minus
    return text


def output_sections(results: Results) -> list:
    """One section per output: its task, what decided, and every variant's figures for it."""
    ref = next((v for v in results.variants if v.ok and v.outputs), None)
    if ref is None:
        return []
    criteria = {c["output"]: c["criterion"] for c in (results.recommendation or {}).get("criteria", [])}
    out = []
    for first in ref.outputs:
        name, task = first["output"], first["task"]
        labelled = first.get("labels")
        judged = ("not scored (--output)" if not first.get("scored", True) else
                  f"held to {criteria[name]}" if name in criteria else "")
        text = [f"{KIND_WORDS.get(task, task)}; " + ("labels given" if labelled else "no labels") +
                (f"; {judged}." if judged else ".")]
        if task in ("classes", "binary", "multilabel") and not labelled:
            text[0] += " Without labels a class output is judged by top-1 (decision) agreement with the float model."
        headers = ["technique", UNITS.get(first["metric"], first["metric"]) + " (95% CI)", "vs float", "p",
                   "extra", "SQNR dB", "cosine"]
        rows = []
        for v in results.variants:
            o = next((x for x in v.outputs or [] if x["output"] == name), None) if v.ok else None
            if o is None:
                continue
            rows.append([v.technique, _value_ci(o), "ref." if v.technique == REFERENCE else _change(o),
                         "—" if o.get("p") is None or v.technique == REFERENCE else f"{o['p']:.2g}"])
            extra = ", ".join(f"{k} {o[k]:.4g}" for k in ("top5", "auc", "rmse", "threshold") if o.get(k) is not None)
            rows[-1] += [extra or "—", "∞" if o.get("sqnr_db") is None else f"{o['sqnr_db']:.1f}",
                         "—" if o.get("cosine") is None else f"{o['cosine']:.4f}"]
        title = "Your metric" if name == "*" else f"Output {name!r}: {task}"
        out.append((title, text, headers, rows))
    return out


def mcu_section(results: Results):
    """The TFLite Micro facts of every variant, how they were measured, and their limits."""
    from ..measure.mcu import LIMITS, steps_text

    rows_ = [v for v in results.variants if v.mcu]
    n, total = rows_[0].mcu.get("samples"), results.data.get("eval_samples")
    drawn = (f"all {n} evaluation samples" if n == total else
             f"{n} of the {total} evaluation samples, a seeded draw (seed {results.settings.get('seed', 0)})")
    text = [f"Every variant LiteRT ran was run again on the TFLite Micro interpreter, in a child process, over "
            f"{drawn}, integer inputs quantized with each input tensor's own scale and zero-point. RAM is the "
            "smallest tensor arena that runs it: the interpreter's recorded total, then a search to the byte, "
            "each size tried on a fresh interpreter (it runs at that size and not one byte less). Flash is the "
            "model file. A variant is wrong on TFLite Micro when its outputs there fail the study's own gate "
            "against LiteRT's outputs of the same file (each output by its task: accuracy within the budget with "
            "labels, top-1 agreement without, SQNR for other outputs): such a variant is never recommended. The "
            "largest difference from LiteRT's built-in kernels (XNNPACK off) is shown in 8-bit steps of each "
            "output (its int8 scale; an int16 scale × 256; a float output's range / 255), for information.",
            LIMITS]

    def pct(x):
        return "—" if x is None else f"{x * 100:.2f}"
    table_rows = []
    for v in rows_:
        m = v.mcu
        if not m["runs"]:
            table_rows.append([v.technique, _mcu_state(m), "—", f"{m['flash_bytes']:,}", "—", "—", "—", "—",
                               m["reason"]])
            continue
        table_rows.append([v.technique, "wrong" if m["wrong"] else "yes", f"{m['arena_bytes']:,}",
                           f"{m['flash_bytes']:,}", pct(m.get("accuracy")), pct(m["agreement_litert"]),
                           pct(m["agreement_float"]), steps_text(m["max_diff_steps"]), ""])
    return ("TFLite Micro", text, ["technique", "runs", "arena bytes (RAM)", "flash bytes", "accuracy %",
                                   "agree LiteRT %", "agree float %", "max diff (8-bit steps)", "reason"],
            table_rows)


def markdown(results: Results, figures) -> str:
    headers, rows = table(results, full=True)
    lines = [f"# {_title(results)}", "", md_cell(_subtitle(results)), "", "## Reading", ""]
    lines += [f"- {s}" for s in reading(results)]
    lines += ["", "## Variants", "", "| " + " | ".join(headers) + " |",
              "| " + " | ".join("---" if h in ("technique", "engine", "vs float32", "I/O") else "---:"
                                for h in headers) + " |"]
    chosen = recommended(results)
    lines += ["| " + " | ".join(md_cell(f"**{c}** (recommended)" if v is chosen and i == 0 else c)
                                for i, c in enumerate(row)) + " |" for v, row in zip(results.variants, rows)]
    lines += [""] + [f"- {md_cell(f)}" for f in row_notes(results)]
    lines += ["", _table_note(results), ""]
    for title, paragraphs, headers_, rows_ in sections(results):
        lines += [f"## {title}", ""] + [md_cell(p) + "\n" for p in paragraphs]
        if rows_:
            lines += ["| " + " | ".join(headers_) + " |", "| " + " | ".join("---" for _ in headers_) + " |"]
            lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows_] + [""]
    for f in figures:
        lines += [f"## {f.title}", "", f"![{md_cell(f.alt)}]({f.name})", "", f.caption, ""]
    lines += ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {md_cell(k)} | {md_cell(v)} |" for k, v in machine_rows(results)]
    lines += ["", "Rendered from results.json by quantbench; re-render with `quantbench report results.json`.", ""]
    return "\n".join(lines)


CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#fff;margin:0}
main{max-width:1400px;margin:0 auto;padding:24px 28px 48px;box-sizing:border-box}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:32px 0 10px;border-bottom:1px solid #e3e8ee;
padding-bottom:4px}
.sub{color:#5b6675;margin:0}
ul.reading li{margin:4px 0}
ul.reading li.rec{font-weight:600}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:separate;border-spacing:0;font-size:12px;font-variant-numeric:tabular-nums}
th,td{padding:5px 5px;border-bottom:1px solid #e3e8ee;white-space:nowrap;background:#fff}
th{background:#f4f6f8;text-align:left;font-weight:600;white-space:normal;vertical-align:bottom}
.scroll th:first-child,.scroll td:first-child{position:sticky;left:0;z-index:1;box-shadow:inset -1px 0 0 #e3e8ee}
td.n{text-align:right}
.ci{display:block;font-size:11px;color:#5b6675;font-weight:400}
td.text{white-space:normal;min-width:14em;max-width:46em;overflow-wrap:anywhere}
tr.failed td,ul.failed{color:#8a1c1c}
tr.rec td{background:#fff3e0}
tr.rec td:first-child{font-weight:600}
.badge{display:block;width:fit-content;margin-top:2px;padding:0 5px;border-radius:3px;background:#b4451f;
color:#fff;font-size:11px;font-weight:600}
td.sig{color:#b4451f;font-weight:600}
td.ns{color:#5b6675;white-space:normal;min-width:9em}
.note{color:#5b6675;font-size:13px}
figure{margin:16px 0}
figure img{max-width:100%;height:auto;border:1px solid #e3e8ee}
figcaption{color:#5b6675;font-size:13px;max-width:760px}
table.kv th{background:none;width:260px}
footer{margin-top:36px;color:#8792a2;font-size:12px}
"""


def _html_cell(header: str, text: str) -> str:
    if header == "vs float32":
        cls = "ns" if text == NO_CHANGE else ("sig" if " pp (p = " in text else "")
    else:
        cls = "" if header in ("technique", "engine", "I/O") else "n"
    shown = html.escape(text)
    if "95% CI" in header and text.endswith(")") and " (" in text:  # the interval under its figure: half the width
        value, ci = text[:-1].split(" (", 1)
        shown = f'{html.escape(value)}<span class="ci">{html.escape(ci)}</span>'
    return f'<td class="{cls}">{shown}</td>' if cls else f"<td>{shown}</td>"


LONG = 40  # a section's cell longer than this (a reason, a layer name) wraps instead of widening its table


def _text_cell(text: str) -> str:
    return f'<td class="text">{html.escape(text)}</td>' if len(text) > LONG else f"<td>{html.escape(text)}</td>"


BADGE = '<span class="badge">recommended</span>'


def _subtitle(results: Results) -> str:
    """The model's file (or source) and the quantbench that measured it, only what is known."""
    parts = [results.model.get("source") or results.model.get("path"),
             f"target {results.recommendation['target']}" if (results.recommendation or {}).get("target") else None,
             f"quantbench {results.quantbench_version}"]
    return " · ".join(str(p) for p in parts if p)


def html_page(results: Results, figures) -> str:
    esc = html.escape
    headers, rows = table(results, full=True)
    statuses = [v.status for v in results.variants]
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(_title(results))}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
             f"<h1>{esc(_title(results))}</h1>",
             f'<p class="sub">{esc(_subtitle(results))}</p>',
             "<h2>Reading</h2>", '<ul class="reading">']
    lines = reading(results)
    first = results.recommendation and lines  # the recommendation's bullet, set apart as the table's row is
    parts += [f'<li class="rec">{esc(s)}</li>' if first and i == 0 else f"<li>{esc(s)}</li>"
              for i, s in enumerate(lines)]
    parts += ["</ul>", "<h2>Variants</h2>", '<div class="scroll">', "<table>", "<thead>", "<tr>"]
    parts += [f'<th scope="col">{esc(h)}</th>' for h in headers]
    parts += ["</tr>", "</thead>", "<tbody>"]
    chosen = recommended(results)
    for v, status, row in zip(results.variants, statuses, rows):
        cells = "".join(_html_cell(h, c) for h, c in zip(headers, row))
        if v is chosen:  # the technique cell gets its badge: the row the reading's first bullet names
            first = _html_cell(headers[0], row[0])
            cells = first[:-len("</td>")] + BADGE + "</td>" + cells[len(first):]
        cls = "failed" if status != "ok" else ("rec" if v is chosen else "")
        parts.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    parts += ["</tbody>", "</table>", "</div>"]
    failed = row_notes(results)
    if failed:
        parts += ['<ul class="failed">'] + [f"<li>{esc(f)}</li>" for f in failed] + ["</ul>"]
    parts.append(f'<p class="note">{esc(_table_note(results))}</p>')
    for title, paragraphs, headers_, rows_ in sections(results):
        parts += [f"<h2>{esc(title)}</h2>"] + [f"<p>{esc(p)}</p>" for p in paragraphs]
        if rows_:
            parts += ['<div class="scroll">', "<table>", "<thead>", "<tr>"]
            parts += [f'<th scope="col">{esc(h)}</th>' for h in headers_] + ["</tr>", "</thead>", "<tbody>"]
            parts += ["<tr>" + "".join(_text_cell(c) for c in row) + "</tr>" for row in rows_]
            parts += ["</tbody>", "</table>", "</div>"]
    for f in figures:
        data = base64.b64encode(f.png).decode("ascii")
        parts += [f"<h2>{esc(f.title)}</h2>", "<figure>",
                  f'<img src="data:image/png;base64,{data}" alt="{esc(f.alt)}">',
                  f"<figcaption>{esc(f.caption)}</figcaption>", "</figure>"]
    parts += ["<h2>Machine</h2>", '<table class="kv">', "<tbody>"]
    parts += [f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in machine_rows(results)]
    parts += ["</tbody>", "</table>",
              "<footer>Rendered from results.json by quantbench; re-render with "
              "<code>quantbench report results.json</code>.</footer>", "</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def write(results: Results, out: str | Path, force: bool = False) -> list[Path]:
    """Write report.md, report.html and the plots into `out`; existing ones are refused without `force`."""
    from . import plots

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"Report folder {out} is a file. Expected a folder. Fix: choose another --out.")
    names = ("report.md", "report.html", *plots.NAMES.values())
    existing = [name for name in names if (out / name).is_file()]
    if existing and not force:
        raise InputError(f"Report files already exist in {out}: {', '.join(existing)}. Expected a folder "
                         "without them. Fix: pass --force to replace them, or choose another --out.")
    for name in names:  # every file checked before any is written: a refusal leaves nothing half-done
        check_new_file(out / name, force, option="--out")
    figures = plots.figures(results)
    files = {"report.md": markdown(results, figures).encode(), "report.html": html_page(results, figures).encode()}
    files.update({f.name: f.png for f in figures})
    written = [write_file(out / name, content, force=force) for name, content in files.items()]
    note_written(out, [p.name for p in written])
    return written


def from_file(path: Path, out: Path | None = None, force: bool = False, console=None,
              wide: bool = False) -> list[Path]:
    """`quantbench report FILE`: a study's results.json becomes report.md, report.html and the plots in `out`
    (default: beside it), and its table is printed on `console` (when given); a `quantbench bench --json` file is
    printed as the table `quantbench bench` printed. Returns the files written."""
    from ..record.bench_file import BenchResult
    from ..record.results import load_saved
    from .text import render

    saved = load_saved(path)
    if isinstance(saved, BenchResult):
        if out is not None:
            raise InputError(f"--out {out} was given with {path}, a `quantbench bench` file, which has no report "
                             "files, only its table. Expected --out only with a study's results.json. Fix: drop --out.")
        if console is not None:
            console.out(render(saved), highlight=False)
        return []
    written = write(saved, out or Path(path).parent, force=force)
    if console is not None:
        print_table(saved, console, wide)
    return written
