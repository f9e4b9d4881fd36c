"""This tree's `LiteModel.predict` against another version of runtime.py, interleaved, same model and inputs.

Usage: git show fa2f1c2:quantbench/runtime.py > /tmp/runtime_old.py    (quantbench/runtime/litert.py after the relayout)
       .venv/bin/python bench/runtime_ab.py /tmp/runtime_old.py [--rounds 2000]
       .venv/bin/python bench/runtime_ab.py --smoke     # this tree's runtime.py on both sides, 100 and 3 rounds

On the demo CNN (untrained: weights do not change the timing), float32 and int8-only: batch-1 predict
over the 450 test images, and one batched predict of all 450. Checks the outputs are identical first.
Ratios are medians of per-round paired ratios new/old, with their distribution-free 95 % intervals.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", nargs="?", help="path to the other runtime.py")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="this tree's runtime.py as the other (unless given), "
                        "100 and 3 rounds: checks the script runs")
    args = parser.parse_args()
    batch_rounds = 40
    if args.smoke:
        args.rounds, batch_rounds = 100, 3
        args.old = args.old or str(Path(__file__).resolve().parents[1] / "quantbench" / "runtime" / "litert.py")
    if args.old is None:
        parser.error("give the other runtime.py")

    import quantbench
    from quantbench.core import stats
    from quantbench.engines.converter import convert
    from quantbench.inputs import data, models
    from quantbench.measure import timing as bench

    # a file of the flat layout imports `.errors`, one of the layer folders `..core.errors`: named to match
    layered = "from ..core" in Path(args.old).read_text()
    name = "quantbench.runtime.old_litert" if layered else "quantbench.old_runtime"
    spec = importlib.util.spec_from_file_location(name, args.old)
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old  # dataclasses look their module up while the class is made
    spec.loader.exec_module(old)

    split = data.digits()
    models.seed_everything(0)
    model, calib = models.reference_cnn(), data.calibration_sample(split.x_train, 50, 0)
    x = split.x_test
    samples = [x[i:i + 1] for i in range(len(x))]

    def paired(t):
        r = t["new"] / t["old"]
        lo, hi = stats.median_ci(r)
        return (f"new/old {np.median(r):.3f} ({lo:.3f}–{hi:.3f}); medians new {np.median(t['new']) * 1e3:.1f} µs, "
                f"old {np.median(t['old']) * 1e3:.1f} µs")

    for tech in ("float32", "int8-only"):
        content = convert(model, tech, calib).content
        new, prev = quantbench.load(content), old.LiteModel(content)
        np.testing.assert_array_equal(new.predict(x), prev.predict(x))
        t = bench.latency({"new": lambda i: new.predict(samples[i % len(x)]),
                           "old": lambda i: prev.predict(samples[i % len(x)])}, args.rounds, warmup=50).times
        print(f"{tech} batch-1 predict, {args.rounds} rounds: {paired(t)}")
        t = bench.latency({"new": lambda i: new.predict(x), "old": lambda i: prev.predict(x)}, batch_rounds,
                          warmup=2).times
        print(f"{tech} batched predict of {len(x)}, {batch_rounds} rounds: {paired(t)}")


if __name__ == "__main__":
    main()
