"""Does `quantbench bench` agree with a study? Each file's latency and throughput intervals against results.json.

Usage:
  .venv/bin/python bench/bench_vs_study.py --runs 3 [--out /tmp/bvs] [--bench "--time-budget 30" ...]
      each run: `quantbench demo`, then `quantbench bench` of its variants right after (once per --bench), compared
  .venv/bin/python bench/bench_vs_study.py results.json bench.json [more bench.json ...]
      compare files made by hand
  .venv/bin/python bench/bench_vs_study.py --smoke results.json
      checks the script runs: that study's files benched once (--time-budget 0.5) and compared, no demo

Besides the intervals it prints each file's median relative to float32 in both: a machine that drifts between
the two runs moves every file alike, so these ratios should agree even when the intervals do not.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QB = [sys.executable, "-m", "quantbench"]


def overlap(a, b) -> bool:
    """Do two 95 % intervals overlap? False when either is missing (too few rounds for one)."""
    return bool(a and b) and a[0] <= b[1] and b[0] <= a[1]


def ci(x: list | None, digits: int) -> str:
    return f"({x[0]:.{digits}f}–{x[1]:.{digits}f})" if x else "(none)"


def compare(study: dict, bench: dict) -> tuple[int, int, int]:
    """Print the table; return (files, latency intervals overlapping, throughput intervals overlapping)."""
    by_file = {Path(f["path"]).name: f for f in bench["files"]}
    print(f"{'technique':<17} {'study ms (95% CI)':>28} {'bench ms (95% CI)':>28} {'overlap':>7} {'ratio':>6}   "
          f"{'study samples/s':>24} {'bench samples/s':>24} {'overlap':>7}   vs float32: study  bench")
    agree = total = t_agree = 0
    f32 = next(v for v in study["variants"] if v["technique"] == "float32")["latency_ms"]["median"]
    b32 = next(f for f in bench["files"] if Path(f["path"]).name == "float32.tflite")["latency_ms"]["median"]
    for v in study["variants"]:
        f = by_file.get(Path(v.get("path") or "").name)
        if v["status"] != "ok" or f is None:
            continue
        a, b = v["latency_ms"], f["latency_ms"]
        ta, tb = v["throughput"], f["throughput"]
        ok, t_ok = overlap(a["ci95"], b["ci95"]), overlap(ta["ci95"], tb["ci95"])
        total, agree, t_agree = total + 1, agree + ok, t_agree + t_ok
        print(f"{v['technique']:<17} {a['median']:9.4f} {ci(a['ci95'], 4)}"
              f" {b['median']:9.4f} {ci(b['ci95'], 4)} {'yes' if ok else 'NO':>7}"
              f" {b['median'] / a['median']:6.3f}   {ta['samples_per_s']:8.0f} {ci(ta['ci95'], 0)}"
              f" {tb['samples_per_s']:8.0f} {ci(tb['ci95'], 0)} {'yes' if t_ok else 'NO':>7}"
              f"   {a['median'] / f32:17.3f} {b['median'] / b32:6.3f}")
    s = next(v for v in study["variants"] if v["technique"] != "keras")["latency_ms"]
    b = bench["files"][0]["latency_ms"]
    print(f"latency intervals overlap for {agree} of {total} files, throughput for {t_agree} of {total}. "
          f"Study: {s['n']} rounds ({s['stopped']}); bench: {b['n']} rounds ({b['stopped']}).", flush=True)
    return total, agree, t_agree


def sandwich(runs: int, out: Path, benches: list[str], study: Path | None = None) -> None:
    """`runs` times: the demo (or the `study` folder given), then `quantbench bench` of its variant files with each
    of `benches` (extra arguments), their order rotating from run to run; one summary line per run and bench."""
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(runs):
        study_dir = study or out / f"demo{i}"
        load = os.getloadavg()[0]
        start = time.strftime("%H:%M:%S")
        if study is None:
            subprocess.run([*QB, "demo", "--out", str(study_dir), "--force", "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)
        study = json.loads((study_dir / "results.json").read_text())
        files = [str(study_dir / v["path"]) for v in study["variants"]
                 if v["status"] == "ok" and (v.get("path") or "").endswith(".tflite")]
        shift = i % len(benches)
        for k, extra in [*enumerate(benches)][shift:] + [*enumerate(benches)][:shift]:
            bench_json = out / f"bench{i}-{k}.json"
            subprocess.run([*QB, "bench", *files, *extra.split(), "--json", str(bench_json), "--force", "--quiet"],
                           check=True, stdout=subprocess.DEVNULL)
            print(f"== run {i + 1} of {runs}, started {start}, load average {load:.1f}; bench {extra or '(defaults)'}")
            total, agree, t_agree = compare(study, json.loads(bench_json.read_text()))
            lines.append(f"run {i + 1} ({start}, load {load:.1f}), bench {extra or '(defaults)'}: latency {agree} of "
                         f"{total}, throughput {t_agree} of {total}")
    print("\n".join(["", "Intervals that overlap, study against `quantbench bench` right after it:", *lines]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", help="results.json, then one or more bench.json")
    p.add_argument("--runs", type=int, default=0, help="run the demo and the bench this many times")
    p.add_argument("--out", default="/tmp/bench-vs-study")
    p.add_argument("--bench", action="append", help="extra `quantbench bench` arguments, e.g. \"--time-budget 30\"; "
                   "repeat to compare settings in the same runs (default: the bench's defaults)")
    p.add_argument("--smoke", action="store_true", help="results.json's files benched once for 0.5 s, no demo: "
                   "checks the script runs")
    a = p.parse_args()
    if a.smoke:
        sandwich(1, Path(tempfile.mkdtemp(prefix="bench-vs-study-")), ["--time-budget 0.5"], Path(a.files[0]).parent)
        return
    if a.runs:
        sandwich(a.runs, Path(a.out), a.bench or [""])
        return
    study = json.loads(Path(a.files[0]).read_text())
    for path in a.files[1:]:
        print(f"== {path}")
        compare(study, json.loads(Path(path).read_text()))


if __name__ == "__main__":
    main()
