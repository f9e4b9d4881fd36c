"""Does `quantbench bench` agree with a study? Its per-file latency and throughput intervals against results.json.

Usage: .venv/bin/python bench/bench_vs_study.py runs/demo/results.json bench.json [more bench.json ...]
(bench.json from `quantbench bench runs/demo/*.tflite --json bench.json`, run right before or after the study.)
Besides the intervals it prints each file's median relative to float32 in both: the drift of a shared machine
between two runs moves every file alike, so these ratios should agree even when the intervals do not.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def overlap(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def main() -> None:
    study = json.loads(Path(sys.argv[1]).read_text())
    for path in sys.argv[2:]:
        print(f"== {path}")
        compare(study, json.loads(Path(path).read_text()))


def compare(study: dict, bench: dict) -> None:
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
        print(f"{v['technique']:<17} {a['median']:9.4f} ({a['ci95'][0]:.4f}–{a['ci95'][1]:.4f})"
              f" {b['median']:9.4f} ({b['ci95'][0]:.4f}–{b['ci95'][1]:.4f}) {'yes' if ok else 'NO':>7}"
              f" {b['median'] / a['median']:6.3f}   {ta['samples_per_s']:8.0f} ({ta['ci95'][0]:.0f}–{ta['ci95'][1]:.0f})"
              f" {tb['samples_per_s']:8.0f} ({tb['ci95'][0]:.0f}–{tb['ci95'][1]:.0f}) {'yes' if t_ok else 'NO':>7}"
              f"   {a['median'] / f32:17.3f} {b['median'] / b32:6.3f}")
    s = next(v for v in study["variants"] if v["technique"] != "keras")["latency_ms"]
    b = bench["files"][0]["latency_ms"]
    print(f"latency intervals overlap for {agree} of {total} files, throughput for {t_agree} of {total}. "
          f"Study: {s['n']} rounds ({s['stopped']}); bench: {b['n']} rounds ({b['stopped']}).")


if __name__ == "__main__":
    main()
