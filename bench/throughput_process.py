"""Is a study's throughput different from `quantbench bench`'s because of the process it runs in?

Usage: PYTHONPATH=. .venv/bin/python bench/throughput_process.py /tmp/thrx/d1
       PYTHONPATH=. .venv/bin/python bench/throughput_process.py runs/demo --smoke

Runs the demo into the folder, then times its variant files three ways one after the other: `bench_files` in
this process (which trained the model and ran the study), a `quantbench bench` child process, and `bench_files`
here again; prints each file's throughput and batch-1 median beside the study's. --smoke: the folder already
holds a study (no demo), every timing 0.5 s.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import quantbench
from quantbench import api
from quantbench.record.results import Results
from quantbench.study.config import StudyConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--smoke", action="store_true", help="the folder's study, timings of 0.5 s: checks the script runs")
    a = p.parse_args()
    out, budget = a.out, 0.5 if a.smoke else 30
    r = Results.load(out / "results.json") if a.smoke else quantbench.demo(out, StudyConfig(force=True))
    files = [str(out / v.path) for v in r.variants if v.status == "ok" and (v.path or "").endswith(".tflite")]
    here = api.bench_files(files, time_budget=budget)
    # --smoke leaves the study's folder as it is
    child_json = Path(tempfile.mkdtemp()) / "child.json" if a.smoke else out / "child.json"
    subprocess.run([sys.executable, "-m", "quantbench", "bench", *files, "--time-budget", str(budget), "--json",
                    str(child_json), "--force", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    child = json.loads(child_json.read_text())
    again = api.bench_files(files, time_budget=budget)
    study = {Path(v.path).name: v for v in r.variants if v.status == "ok" and (v.path or "").endswith(".tflite")}
    print(f"{'file':<24} samples/s: {'study':>8} {'here':>8} {'child':>8} {'again':>8} | batch-1 µs: "
          f"{'study':>6} {'here':>6} {'child':>6} {'again':>6}")
    for x, y, z in zip(here.files, child["files"], again.files):
        v = study[Path(x["path"]).name]
        thr = [v.throughput["samples_per_s"], *(f["throughput"]["samples_per_s"] for f in (x, y, z))]
        lat = [v.latency_ms["median"], *(f["latency_ms"]["median"] for f in (x, y, z))]
        print(f"{Path(x['path']).name:<24} {'':10} " + " ".join(f"{t:8.0f}" for t in thr) + " | "
              + " " * 11 + " ".join(f"{ms * 1e3:6.1f}" for ms in lat))


if __name__ == "__main__":
    main()
