"""Latency and throughput, the variants interleaved so drift on a shared machine hits all alike."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from . import stats
from .progress import Silent
from .results import REFERENCE

QUANTILES = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 100)  # kept in results.json for the latency plot


def _batches(arrays: list[np.ndarray], batch: int) -> list[list[np.ndarray]]:
    """Consecutive whole batches of `batch` samples; fewer samples than that are repeated to fill one."""
    n = len(arrays[0])
    if n < batch:
        idx = np.arange(batch) % n
        return [[a[idx] for a in arrays]]
    return [[a[s:s + batch] for a in arrays] for s in range(0, n - batch + 1, batch)]


def lite_runner(model, x, batch: int = 1) -> Callable[[int], object]:
    """A function timing one LiteRT call on batch i (of `batch` samples), inputs quantized beforehand.

    Sets the model's batch size, so make a model's runners for one batch size at a time. A model
    whose batch dimension is fixed (at 1) runs `batch` single invokes per call instead.
    """
    arrays = model.prepare(x)
    if model.resizable:
        model.set_batch(batch)
        batches = _batches(arrays, batch)
        return lambda i: model.run(batches[i % len(batches)])
    singles = _batches(arrays, 1)

    def run(i):
        for j in range(i * batch, (i + 1) * batch):
            model.run(singles[j % len(singles)])
    return run


def reference_runner(source, x, batch: int = 1) -> Callable[[int], object]:
    """A function timing one call of the float model on batch i: traced (graph mode, as served)."""
    if source.lite is not None:
        return lite_runner(source.lite, x, batch)
    from .quiet import import_tensorflow

    tf = import_tensorflow()
    call = source.traced(batch)
    batches = [[tf.constant(a) for a in b] for b in _batches(list(x), batch)]

    def run(i):
        out = call(batches[i % len(batches)])
        values = out.values() if isinstance(out, dict) else (out if isinstance(out, (list, tuple)) else [out])
        return [v.numpy() for v in values]
    return run


def latency(runners: dict[str, Callable[[int], object]], n: int, warmup: int = 10,
            on_round=None, seed: int = 0) -> dict[str, np.ndarray]:
    """Milliseconds per call for each runner over rounds 0..n-1, every runner once per round.

    The order within a round is shuffled (seeded): in a fixed order a variant always runs right after
    the same neighbour, whose cache footprint it then pays for.
    """
    for run in runners.values():
        for i in range(min(warmup, n)):
            run(i)
    names = list(runners)
    order = np.random.default_rng(seed)
    times = {name: np.empty(n) for name in names}
    for i in range(n):
        for k in order.permutation(len(names)):
            name = names[k]
            run = runners[name]
            start = time.perf_counter()
            run(i)
            times[name][i] = (time.perf_counter() - start) * 1e3
        if on_round:
            on_round()
    return times


def summarize(ms: np.ndarray) -> dict:
    """Median with its distribution-free 95 % interval, tail percentiles and quantiles, in ms."""
    ms = np.asarray(ms, dtype=float)
    q = np.percentile(ms, QUANTILES)
    return {
        "median": float(np.median(ms)),
        "ci95": stats.median_ci(ms),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "n": int(len(ms)),
        "quantiles": {str(p): round(float(v), 6) for p, v in zip(QUANTILES, q)},
    }


def throughput(ms: np.ndarray, batch: int) -> dict:
    """Samples per second from per-batch times: batch / median time, with the median's interval."""
    lo, hi = stats.median_ci(ms)
    return {"batch": batch, "samples_per_s": batch * 1e3 / float(np.median(ms)),
            "ci95": [batch * 1e3 / hi, batch * 1e3 / lo], "n": int(len(ms))}


def measure(source, lite: dict, feeds: dict, x, batch: int = 32, rounds: int = 30, reporter=None,
            reference: str = REFERENCE) -> dict[str, dict]:
    """Batch-1 latency over every sample of `x`, then throughput at `batch`, each phase interleaved.

    Args:
        source: the float model (`models.Source`), timed as the row `reference`.
        lite: variant name -> LiteModel; feeds: variant name -> its inputs, in its own input order.

    Returns: name -> {"latency_ms": summarize(...), "throughput": throughput(...)}.
    """
    reporter = reporter or Silent()
    n = len(x[0])
    result = {}
    for size, count in ((1, n), (batch, rounds)):
        runners = {reference: reference_runner(source, x, size)}
        runners.update({name: lite_runner(m, feeds[name], size) for name, m in lite.items()})
        with reporter.task(f"Timing (batch {size})", count) as advance:
            times = latency(runners, count, warmup=10 if size == 1 else 3, on_round=advance)
        for name, ms in times.items():
            key, value = ("latency_ms", summarize(ms)) if size == 1 else ("throughput", throughput(ms, size))
            result.setdefault(name, {})[key] = value
    return result
