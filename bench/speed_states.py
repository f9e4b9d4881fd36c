"""Could any timing window make a study's and a bench's intervals agree on this machine? Measured on a long trace.

Usage:
  .venv/bin/python bench/speed_states.py FOLDER --seconds 720 --trace trace.npz   # record, then simulate
  .venv/bin/python bench/speed_states.py --from trace.npz                           # simulate a recorded trace
  .venv/bin/python bench/speed_states.py FOLDER --smoke      # 3 s of four files, windows of tenths of a second

Records every .tflite file of FOLDER (e.g. runs/demo) at batch 1, interleaved in shuffled rounds as
`bench.latency` times them, for --seconds, keeping each round's times and when it ended. Then, for every start
second t of the trace, it cuts a "study" window [t, t + S) and a "bench" window that begins G seconds after
the study's ends and lasts B seconds, gives each window's rounds the interval a study reports
(`stats.median_ci_series`), and counts the starts at which every file's two intervals overlap (the done-when of
issue 13) and those at which none does. It also prints float32's per-second median and 1st percentile: if the
machine swings between speed states that slow every call, the low percentiles move with the median, and no
statistic of one window describes another window in a different state.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from quantbench import api
from quantbench.core import stats
from quantbench.measure import timing as bench
from quantbench.runtime.litert import LiteModel, generated_inputs

STUDY_S = (2.0, 4.6)        # the demo's batch-1 phase: stops at 2 s once converged, its whole share is 4.6 s
GAP_S = (15.0, 40.0)        # the demo's remaining phases and report, then the bench process starting
BENCH_S = (2.0, 7.5, 15.0, 30.0, 60.0)  # bench's batch-1 phase: 2 s when converged, 15 s its share of 30 s, ...


def record(folder: Path, seconds: float, files: int | None = None) -> dict:
    paths = sorted(folder.glob("*.tflite"))[:files]
    if not paths:
        sys.exit(f"{folder} holds no .tflite files")
    models = [LiteModel(p) for p in paths]
    inputs = generated_inputs(models, api.GENERATED, fallback=api.FLOAT_RANGE, bound=bench.THROUGHPUT_MEMORY)
    runners = [bench.lite_runner(m, x, 1) for m, x in zip(models, inputs)]
    for i in range(20):
        for run in runners:
            run(i)
    order, times, stamps = np.random.default_rng(0), [], []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        row = np.empty(len(runners))
        for k in order.permutation(len(runners)):
            t0 = time.perf_counter()
            runners[k](len(times))
            row[k] = (time.perf_counter() - t0) * 1e3
        times.append(row)
        stamps.append(time.perf_counter() - start)
    return {"times": np.asarray(times), "stamps": np.asarray(stamps), "names": np.asarray([p.stem for p in paths])}


def simulate(trace, windows=(STUDY_S, GAP_S, BENCH_S)) -> None:
    times, stamps, names = trace["times"], trace["stamps"], list(trace["names"])
    print(f"{len(stamps)} rounds of {len(names)} files over {stamps[-1]:.0f} s")

    def intervals(a, b):
        i, j = np.searchsorted(stamps, [a, b])
        return [stats.median_ci_series(times[i:j, k]) for k in range(len(names))]

    step = 1.0 if stamps[-1] > 10 else 0.25  # a start every second (every quarter of one in --smoke's short trace)
    for s, g, b in itertools.product(*windows):
        agree = []
        for t in np.arange(0.0, stamps[-1] - s - g - b, step):
            one, two = intervals(t, t + s), intervals(t + s + g, t + s + g + b)
            agree.append(sum(lo1 <= hi2 and lo2 <= hi1 for (lo1, hi1), (lo2, hi2) in zip(one, two)))
        agree = np.asarray(agree)
        print(f"study {s:4.1f} s, gap {g:3g} s, bench {b:4.1f} s: every file agrees at {np.mean(agree == len(names)):6.1%} "
              f"of {len(agree)} starts, none at {np.mean(agree == 0):6.1%}")
    if "float32" in names:
        k, second = names.index("float32"), np.floor(stamps).astype(int)
        for q in (50, 1):
            per = [np.percentile(times[second == i, k], q) * 1e3 for i in np.unique(second)]
            print(f"float32 per second, {'median' if q == 50 else f'{q}st percentile'} (µs):",
                  " ".join(f"{v:.0f}" for v in per))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", type=Path)
    p.add_argument("--seconds", type=float, default=720.0)
    p.add_argument("--trace", type=Path, help="where to keep the recorded trace (.npz)")
    p.add_argument("--from", dest="source", type=Path, help="simulate this recorded trace instead of recording")
    p.add_argument("--smoke", action="store_true", help="3 s of four files, windows of 0.5 s: checks the script runs")
    a = p.parse_args()
    if a.smoke:
        if a.folder is None:
            p.error("--smoke: give FOLDER")
        simulate(record(a.folder, 3.0, files=4), ((0.5,), (0.5,), (0.5, 1.0)))
        return
    if a.source is not None:
        trace = np.load(a.source)
    elif a.folder is not None:
        trace = record(a.folder, a.seconds)
        if a.trace is not None:
            np.savez(a.trace, **trace)
    else:
        p.error("give FOLDER to record, or --from TRACE")
    simulate(trace)


if __name__ == "__main__":
    main()
