"""Does `quantbench bench` agree with a study? Its per-file latency and throughput intervals against results.json.

Usage: .venv/bin/python bench/bench_vs_study.py runs/demo/results.json bench.json
(bench.json from `quantbench bench runs/demo/*.tflite --json bench.json`, run right after the study.)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def overlap(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def main() -> None:
    study, bench = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
    by_file = {Path(f["path"]).name: f for f in bench["files"]}
    print(f"{'technique':<17} {'study ms (95% CI)':>28} {'bench ms (95% CI)':>28} {'overlap':>7} {'ratio':>6}   "
          f"{'study samples/s':>24} {'bench samples/s':>24} {'overlap':>7}")
    agree = total = t_agree = 0
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
              f" {tb['samples_per_s']:8.0f} ({tb['ci95'][0]:.0f}–{tb['ci95'][1]:.0f}) {'yes' if t_ok else 'NO':>7}")
    s, b = study["variants"][0]["latency_ms"], bench["files"][0]["latency_ms"]
    print(f"latency intervals overlap for {agree} of {total} files, throughput for {t_agree} of {total}. "
          f"Study: {s['n']} rounds ({s['stopped']}); bench: {b['n']} rounds ({b['stopped']}).")


if __name__ == "__main__":
    main()
