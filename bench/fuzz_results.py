"""Damage a results.json (or a `quantbench bench --json` file) one field at a time and run `quantbench report` on
each: none may be an internal error.

Usage:
  .venv/bin/python bench/fuzz_results.py runs/demo/results.json [--two] [--smoke]
  .venv/bin/python bench/fuzz_results.py bench.json

Each case sets one field to a value of the wrong kind (null, text, a number, a negative number, a list, an
object, true, NaN, Infinity): every top-level field, every field of every variant row (of a bench file: every
file; all rows at once), of `latency_ms` and `throughput`, of the recommendation, and of `model`, `data`,
`machine`, `settings`. Each is rendered by `quantbench report FILE --out DIR` (a bench file: `quantbench report
FILE`; with --two, `quantbench report GOOD FILE` side by side). Prints how many cases gave an outcome other than
exit 0 or one line with exit 2, grouped by message. --smoke: one case in 200.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
import tempfile
from pathlib import Path

BAD = [None, "x", 3, -1.5, [1, 2], {"a": 1}, True, float("nan"), float("inf")]


def cases(base: dict) -> list:
    out = []

    def each(label, setter):
        out.extend((f"{label}={v!r}", lambda r, v=v: setter(r, v)) for v in BAD)
    for k in base:
        each(f"top.{k}", lambda r, v, k=k: r.__setitem__(k, v))
    rows = "files" if "files" in base else "variants"
    for k in sorted(set().union(*[set(row) for row in base[rows]])):
        each(f"row.{k}", lambda r, v, k=k: [row.__setitem__(k, v) for row in r[rows]])
    for sub in ("latency_ms", "throughput"):
        for k in ("median", "ci95", "p90", "p99", "n", "quantiles", "samples_per_s", "batch", "stopped"):
            each(f"row.{sub}.{k}", lambda r, v, sub=sub, k=k: [row[sub].__setitem__(k, v) for row in r[rows]
                                                               if isinstance(row.get(sub), dict)])
    for k in list(base.get("recommendation") or {}):
        each(f"rec.{k}", lambda r, v, k=k: r["recommendation"].__setitem__(k, v))
    for top in ("model", "data", "machine", "settings"):
        for k in list(base.get(top) or {}):
            each(f"{top}.{k}", lambda r, v, top=top, k=k: r[top].__setitem__(k, v))
    return out


def main() -> None:
    from quantbench.cli import main as qb

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--two", action="store_true", help="side by side with the undamaged file")
    p.add_argument("--smoke", action="store_true", help="one case in 200: checks the script runs")
    a = p.parse_args()
    base = json.loads(Path(a.results).read_text())
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-results-"))
    good = tmp / "good.json"
    good.write_text(json.dumps(base))
    bad: dict = {}
    todo = cases(base)[::200 if a.smoke else 1]
    for i, (label, damage) in enumerate(todo):
        raw = copy.deepcopy(base)
        damage(raw)
        path = tmp / f"case{i}.json"
        path.write_text(json.dumps(raw))
        argv = ["report", str(good), str(path)] if a.two else ["report", str(path)] if "files" in base else \
            ["report", str(path), "--out", str(tmp / f"out{i}")]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = qb(argv)
            except SystemExit as exc:
                code = exc.code
            except BaseException as exc:  # noqa: BLE001 - an escape is exactly what this looks for
                code = f"raised {type(exc).__name__}: {exc}"
        lines = err.getvalue().strip().splitlines()
        if code not in (0, 2) or (code == 2 and len(lines) != 1) or "internal error" in err.getvalue():
            bad.setdefault((str(code), lines[-1][:160] if lines else ""), []).append(label)
    print(f"{len(todo)} cases ({'side by side' if a.two else 'one report each'}); "
          f"{sum(map(len, bad.values()))} not exit 0 or one line with exit 2", file=sys.__stdout__)
    for (code, line), labels in sorted(bad.items(), key=lambda x: -len(x[1])):
        print(f"  exit {code}: {line} ({len(labels)}: {', '.join(labels[:4])})", file=sys.__stdout__)


if __name__ == "__main__":
    main()
