"""How this machine's speed swings: one .tflite file timed in back-to-back windows of 100 calls.

Usage:
  .venv/bin/python bench/machine_swings.py FILE.tflite [--seconds 120] [--fast-below MICROSECONDS] [--smoke]

Prints the share of windows in the fast state (median below --fast-below, default: the 25th percentile of
the window medians times 1.2), how many seconds in a row the per-second median stays fast or slow, the steal time the kernel
reports, and one figure per second: the window medians' median. --smoke: one second.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from quantbench import api
from quantbench.measure import timing as bench
from quantbench.runtime.litert import LiteModel, generated_inputs


def steal() -> tuple[int, int]:
    fields = open("/proc/stat").readline().split()
    return int(fields[8]), sum(map(int, fields[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--fast-below", type=float, default=None, help="µs; a window's median below it is 'fast'")
    p.add_argument("--smoke", action="store_true", help="one second: checks the script runs")
    a = p.parse_args()
    if a.smoke:
        a.seconds = 1.0
    m = LiteModel(a.file)
    inputs = generated_inputs([m], api.GENERATED, fallback=api.FLOAT_RANGE, bound=bench.THROUGHPUT_MEMORY)[0]
    run = bench.lite_runner(m, inputs, 1)
    medians, stamps, st0, end = [], [], steal(), time.perf_counter() + a.seconds
    while time.perf_counter() < end:
        ts = []
        for i in range(100):
            t0 = time.perf_counter()
            run(i)
            ts.append(time.perf_counter() - t0)
        medians.append(np.median(ts) * 1e6)
        stamps.append(time.perf_counter())
    st1 = steal()
    meds, stamps = np.asarray(medians), np.asarray(stamps)
    cut = a.fast_below or float(np.percentile(meds, 25)) * 1.2
    fast = meds < cut
    print(f"{len(meds)} windows of 100 calls, {a.seconds / len(meds) * 1e3:.1f} ms each; fast (< {cut:.1f} µs): "
          f"{fast.mean():.0%} of windows; steal time {100 * (st1[0] - st0[0]) / max(st1[1] - st0[1], 1):.1f} %")
    second = np.floor(stamps - stamps[0]).astype(int)
    per_second = np.array([np.median(meds[second == s]) for s in np.unique(second)])
    fast_s = per_second < cut  # single windows flicker; whole seconds show the states that last
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(fast_s.astype(int))) + 1, [len(fast_s)]])
    for state in (True, False):
        spans = [e - b for b, e in zip(bounds[:-1], bounds[1:]) if fast_s[b] == state]
        if spans:
            print(f"{'fast' if state else 'slow'} seconds in a row: {len(spans)} stretches, median {np.median(spans):.0f}, "
                  f"longest {max(spans)}")
    print("window medians (µs), 5/25/50/75/95th percentiles:", " ".join(f"{v:.1f}" for v in
                                                                      np.percentile(meds, [5, 25, 50, 75, 95])))
    print("median per second (µs):", " ".join(f"{v:.0f}" for v in per_second))


if __name__ == "__main__":
    main()
