"""Wall time and peak memory of `quantbench demo`, end to end, over a few runs.

Usage: .venv/bin/python bench/demo.py [--runs 3] [--smoke] [-- extra demo options]
Each run is a fresh process (TensorFlow import included); peak memory is the process's max RSS. --smoke: one run
of a demo of 1 epoch, float32 only, 20 calibration samples, 0.2 s of timing, in one process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

SMOKE = ["--epochs", "1", "--techniques", "float32", "--calib-size", "20", "--time-budget", "0.2", "--workers", "0"]


def one_run(extra: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "quantbench", "demo", "--out", os.path.join(tmp, "demo"), "--quiet", *extra]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"demo failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024 ** 2  # KiB -> GiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="one run of a tiny demo: checks the script runs")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.smoke:
        args.runs, extra = 1, [*SMOKE, *extra]
    walls, peaks = [], []
    for i in range(args.runs):
        wall, peak = one_run(extra)
        walls.append(wall)
        peaks.append(peak)
        print(f"run {i + 1}: {wall:.1f} s wall, {peak:.2f} GiB peak RSS", flush=True)
    print(f"demo {' '.join(extra) or '(defaults)'}: wall median {statistics.median(walls):.1f} s "
          f"(min {min(walls):.1f}, max {max(walls):.1f}); peak RSS max {max(peaks):.2f} GiB over {args.runs} runs")


if __name__ == "__main__":
    main()
