"""A real-sized model: MobileNetV2 at 224x224 — conversion time, size and batch-1 latency per technique.

Usage: .venv/bin/python bench/mobilenet.py [--rounds 120] [--calib 16] [--smoke]

`keras.applications.MobileNetV2(weights=None)`: random-initialised weights (no download), so accuracy means
nothing here; size and speed do not depend on the weight values. Calibration for int8-only uses random
images uniform in [-1, 1] (MobileNetV2's input range), seeded. Latency: every technique at 1 and at 2 LiteRT
threads, all eight models interleaved round by round (shuffled order), on random inputs. Speed ratios
are medians of per-round paired ratios (against float32 at the same thread count; 1 against 2 threads),
with their distribution-free 95 % intervals: robust to the load of a shared machine drifting.
--smoke: the digits CNN instead (each conversion of MobileNetV2 takes tens of seconds), float32 and int8-only,
2 calibration images, 10 rounds.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

TECHNIQUES = ("float32", "dynamic", "int8-only", "float16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=120)
    parser.add_argument("--calib", type=int, default=16, help="random calibration images for int8-only")
    parser.add_argument("--smoke", action="store_true", help="the digits CNN, two techniques, 10 rounds: "
                        "checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.calib = 10, 2

    import quantbench
    from quantbench.core import machine
    from quantbench.engines.converter import convert
    from quantbench.inputs import models
    from quantbench.measure import timing as bench
    from quantbench.runtime.tf import import_tensorflow

    import_tensorflow()
    import keras

    start = time.perf_counter()
    model = models.reference_cnn() if args.smoke else \
        keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    print(f"{model.name}(weights=None): {model.count_params():,} parameters, built in "
          f"{time.perf_counter() - start:.1f} s")
    rng = np.random.default_rng(0)
    shape = tuple(model.input_shape[1:])
    calib = rng.uniform(-1, 1, (args.calib, *shape)).astype(np.float32)
    x = rng.uniform(-1, 1, (8, *shape)).astype(np.float32)

    chosen = ("float32", "int8-only") if args.smoke else TECHNIQUES
    contents = {}
    for t in chosen:
        conv = convert(model, t, calib)
        contents[t] = conv.content
        print(f"  {t:<10} converted in {conv.seconds:5.1f} s, {len(conv.content) / 2**20:6.2f} MiB", flush=True)

    lite = {f"{t} @{n}": quantbench.load(contents[t], num_threads=n) for n in (1, 2) for t in chosen}
    runners = {name: bench.lite_runner(m, x) for name, m in lite.items()}
    times = bench.latency(runners, args.rounds, warmup=3).times
    m = machine.describe()
    print(f"\nbatch-1 latency, {args.rounds} interleaved rounds, {m['cpu']} ({', '.join(m['simd'])}; "
          f"int8 dot product: {m['int8_dot']}), {m['cores']} cores:")
    for name, ms in times.items():
        s = bench.summarize(ms)
        t, n = name.split(" @")
        ratio = "" if t == "float32" else f", {paired(times[f'float32 @{n}'], ms)}× float32's speed"
        print(f"  {name:<14} median {s['median']:7.2f} ms (95 % CI {s['ci95'][0]:.2f}–{s['ci95'][1]:.2f}), "
              f"p90 {s['p90']:7.2f}{ratio}")
    for t in chosen:
        print(f"  {t}: 2 threads are {paired(times[f'{t} @1'], times[f'{t} @2'])}× as fast as 1")


def paired(a, b) -> str:
    """Median of the per-round ratios a/b, with its 95 % interval."""
    from quantbench.core import stats

    r = np.asarray(a) / np.asarray(b)
    lo, hi = stats.median_ci(r)
    return f"{np.median(r):.2f} ({lo:.2f}–{hi:.2f})"

if __name__ == "__main__":
    main()
