"""How many interleaved rounds until every median's 95 % interval is within ±x %? On a study folder's .tflite files.

Usage: .venv/bin/python bench/convergence.py runs/demo [--smoke]
Runs 3,000 batch-1 rounds and 400 batch-32 rounds (no early stop) and prints, after n rounds, the widest
half-interval of any file relative to its median, and the median of those widths. --smoke: 60 and 30 rounds of
four files.
"""
from __future__ import annotations

import argparse
import glob
import time

import numpy as np

from quantbench import api
from quantbench.core import stats
from quantbench.measure import timing as bench
from quantbench.runtime.litert import LiteModel, generated_inputs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--smoke", action="store_true", help="60 and 30 rounds of 4 files: checks the script runs")
    args = p.parse_args()
    files = sorted(glob.glob(f"{args.folder}/*.tflite"))[:4 if args.smoke else None]
    models = [LiteModel(f) for f in files]
    inputs = generated_inputs(models, api.GENERATED, fallback=api.FLOAT_RANGE, bound=bench.THROUGHPUT_MEMORY)
    for size, rounds in ((1, 60), (32, 30)) if args.smoke else ((1, 3000), (32, 400)):
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
