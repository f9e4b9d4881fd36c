"""Latency: batch-1 timings, the variants interleaved so drift on a shared machine hits all alike."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def lite_runner(model, x) -> Callable[[int], object]:
    """A function timing one LiteRT invoke on sample i, inputs quantized beforehand."""
    arrays = model.prepare(x)
    if model.resizable:
        model.set_batch(1)
    samples = [[a[i:i + 1] for a in arrays] for i in range(len(arrays[0]))]
    return lambda i: model.run(samples[i])


def reference_runner(source, x) -> Callable[[int], object]:
    """A function timing one call of the float model (traced, as served) on sample i."""
    if source.lite is not None:
        return lite_runner(source.lite, x)
    from .quiet import import_tensorflow

    tf = import_tensorflow()
    call = source.call_one()
    samples = [[tf.constant(a[i:i + 1]) for a in x] for i in range(len(x[0]))]

    def run(i):
        out = call(samples[i])
        values = out.values() if isinstance(out, dict) else (out if isinstance(out, (list, tuple)) else [out])
        return [v.numpy() for v in values]
    return run


def latency(runners: dict[str, Callable[[int], object]], n: int, warmup: int = 10,
            on_round=None) -> dict[str, np.ndarray]:
    """Milliseconds per call for each runner over samples 0..n-1, interleaved sample by sample."""
    for run in runners.values():
        for i in range(min(warmup, n)):
            run(i)
    times = {name: np.empty(n) for name in runners}
    for i in range(n):
        for name, run in runners.items():
            start = time.perf_counter()
            run(i)
            times[name][i] = (time.perf_counter() - start) * 1e3
        if on_round:
            on_round()
    return times


def summarize(ms: np.ndarray) -> dict:
    """Median and tail of a latency sample, in ms."""
    return {
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "n": int(len(ms)),
    }
