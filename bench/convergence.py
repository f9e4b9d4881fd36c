"""How many interleaved rounds until every median's 95 % interval is within ±x %? On a study folder's .tflite files.

Usage: .venv/bin/python bench/convergence.py runs/demo
Runs 3,000 batch-1 rounds and 400 batch-32 rounds (no early stop) and prints, after n rounds, the widest
half-interval of any file relative to its median, and the median of those widths.
"""
from __future__ import annotations

import glob
import sys
import time

import numpy as np

from quantbench import bench, stats
from quantbench.runtime import LiteModel


def main() -> None:
    files = sorted(glob.glob(f"{sys.argv[1]}/*.tflite"))
    models = [LiteModel(f) for f in files]
    inputs = bench.generate_inputs(models)
    for size, rounds in ((1, 3000), (32, 400)):
        runners = {f.rsplit("/", 1)[-1]: bench.lite_runner(m, a, size) for f, m, a in zip(files, models, inputs)}
        start = time.perf_counter()
        timing = bench.latency(runners, rounds, warmup=10)
        print(f"batch {size}: {timing.rounds} rounds of {len(files)} files in {time.perf_counter() - start:.1f} s")
        for n in (30, 60, 100, 200, 400, 1000, 3000):
            if n > timing.rounds:
                break
            widths = {}
            for name, ms in timing.times.items():
                lo, hi = stats.median_ci(ms[:n])
                med = np.median(ms[:n])
                widths[name] = max(med - lo, hi - med) / med * 100
            worst = max(widths, key=widths.get)
            print(f"  after {n:>4} rounds: widest ±{widths[worst]:.1f} % ({worst}), "
                  f"median ±{np.median(list(widths.values())):.1f} %")


if __name__ == "__main__":
    main()
