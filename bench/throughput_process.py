"""Is a study's throughput different from `quantbench bench`'s because of the process it runs in?

Usage: PYTHONPATH=. .venv/bin/python bench/throughput_process.py /tmp/thrx/d1

Runs the demo into the folder, then times its variant files three ways one after the other: `bench_files` in
this process (which trained the model and ran the study), a `quantbench bench` child process, and `bench_files`
here again; prints each file's throughput and batch-1 median beside the study's.
"""
import json
import subprocess
import sys
from pathlib import Path

import quantbench
from quantbench import bench


def main(out: Path) -> None:
    r = quantbench.demo(out=out, force=True)
    files = [str(out / v.path) for v in r.variants if v.status == "ok" and (v.path or "").endswith(".tflite")]
    here = bench.bench_files(files, time_budget=30)
    subprocess.run([sys.executable, "-m", "quantbench", "bench", *files, "--time-budget", "30", "--json",
                    str(out / "child.json"), "--force", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    child = json.loads((out / "child.json").read_text())
    again = bench.bench_files(files, time_budget=30)
    study = {Path(v.path).name: v for v in r.variants if v.status == "ok" and (v.path or "").endswith(".tflite")}
    print(f"{'file':<24} samples/s: {'study':>8} {'here':>8} {'child':>8} {'again':>8} | batch-1 µs: "
          f"{'study':>6} {'here':>6} {'child':>6} {'again':>6}")
    for a, b, c in zip(here.files, child["files"], again.files):
        v = study[Path(a["path"]).name]
        thr = [v.throughput["samples_per_s"], *(f["throughput"]["samples_per_s"] for f in (a, b, c))]
        lat = [v.latency_ms["median"], *(f["latency_ms"]["median"] for f in (a, b, c))]
        print(f"{Path(a['path']).name:<24} {'':10} " + " ".join(f"{t:8.0f}" for t in thr) + " | "
              + " " * 11 + " ".join(f"{ms * 1e3:6.1f}" for ms in lat))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
