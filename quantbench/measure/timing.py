"""Latency and throughput, the variants interleaved so drift on a shared machine hits all alike, on a time budget."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core import stats
from ..core.progress import Silent
from ..record import schema
from ..record.results import REFERENCE

QUANTILES = tuple(int(q) for q in schema.QUANTILES)  # kept in results.json for the latency plot
TIME_BUDGET_S = 30.0        # default for a whole timing (batch 1, then throughput), in seconds
REL_CI = 0.03               # a phase stops early once every median's 95 % interval is within ±3 % of it (see BENCHMARKS.md)
MIN_ROUNDS = 30             # ... but not before this many rounds
MAX_ROUNDS = 20000          # and never more than this many
MIN_PHASE_S = 2.0           # ... nor before this many seconds (or its whole share of the budget, if less): this
# machine's speed swings every few tenths of a second, and a phase that converged in 40 ms timed one swing,
# which the next run could not reproduce (BENCHMARKS.md, "`quantbench bench` against a study's figures")
THROUGHPUT_MEMORY = 64 * 2 ** 20  # one model's input+output bytes at the throughput batch stay within this
WARM_CALLS = 1              # batch-1 latency: each timed call follows an untimed one of the same model (`latency`)
STOPS = ("converged", "budget", "max rounds")  # why a phase stopped, as results.json records it


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call of each runner, one entry per round, and why the rounds stopped."""

    times: dict[str, np.ndarray]
    rounds: int
    stopped: str  # one of STOPS


def _batches(arrays: list[np.ndarray], batch: int) -> list[list[np.ndarray]]:
    """Consecutive whole batches of `batch` samples; fewer samples than that are repeated to fill one."""
    n = len(arrays[0])
    if n < batch:
        idx = np.arange(batch) % n
        return [[a[idx] for a in arrays]]
    return [[a[s:s + batch] for a in arrays] for s in range(0, n - batch + 1, batch)]


def _fixed_batch(shapes) -> int | None:
    """The batch dimension a model fixes (first input's), or None when it may be resized."""
    first = shapes[0] if shapes else ()
    return int(first[0]) if first and first[0] > 0 else None


def samples_per_call(model, batch: int) -> int:
    """Samples one timed call of `lite_runner(model, x, batch)` processes: `batch`, rounded up to whole invokes
    of a model whose batch dimension is fixed."""
    fixed = None if model.resizable else (_fixed_batch([t.shape for t in model.inputs]) or 1)
    return batch if fixed is None else math.ceil(batch / fixed) * fixed


def lite_runner(model, x, batch: int = 1) -> Callable[[int], object]:
    """A function timing one LiteRT call on batch i (of `batch` samples), inputs quantized beforehand.

    Sets the model's batch size, so make a model's runners for one batch size at a time. A model whose
    batch dimension is fixed at B runs ceil(batch / B) invokes of B samples per call instead (at batch 1
    and B = 2: one invoke of two samples, the least it can do; see samples_per_call).
    """
    arrays = model.prepare(x)
    if model.resizable:
        model.set_batch(batch)
        batches = _batches(arrays, batch)
        return lambda i: model.run(batches[i % len(batches)])
    fixed = _fixed_batch([t.shape for t in model.inputs]) or 1
    chunks, invokes = _batches(arrays, fixed), math.ceil(batch / fixed)

    def run(i):
        for j in range(i * invokes, (i + 1) * invokes):
            model.run(chunks[j % len(chunks)])
    return run


def reference_runner(source, x, batch: int = 1) -> Callable[[int], object]:
    """A function timing one call of the float model on batch i: traced (graph mode, as served)."""
    if source.lite is not None:
        return lite_runner(source.lite, x, batch)
    from ..runtime.tf import import_tensorflow

    tf = import_tensorflow()
    batch = _reference_samples(source, batch)  # a fixed batch dimension is the least it takes
    call = source.traced(batch)
    batches = [[tf.constant(a) for a in b] for b in _batches(list(x), batch)]

    def run(i):
        out = call(batches[i % len(batches)])
        values = out.values() if isinstance(out, dict) else (out if isinstance(out, (list, tuple)) else [out])
        return [v.numpy() for v in values]
    run(0)  # the first call traces the graph (tenths of a second): here, not in the timed phase's budget
    return run


def _reference_samples(source, batch: int) -> int:
    return samples_per_call(source.lite, batch) if source.lite is not None \
        else max(batch, _fixed_batch(source.input_shapes) or 1)


def converged(times: dict[str, list], rel_ci: float) -> bool:
    """True when every runner's median has an order-statistics 95 % interval within ±rel_ci of it: the rounds'
    sampling is precise enough. (More rounds cannot narrow what the machine's drift adds to the reported
    interval, `stats.median_ci_series`: that part says how steady the machine was.)"""
    for ms in times.values():
        lo, hi = stats.median_ci(ms)
        med = float(np.median(ms))
        if not med > 0 or max(med - lo, hi - med) > rel_ci * med:
            return False
    return True


def latency(runners: dict[str, Callable[[int], object]], max_rounds: int = MAX_ROUNDS, warmup: int = 10,
            on_round=None, seed: int = 0, *, budget_s: float | None = None, min_rounds: int = MIN_ROUNDS,
            rel_ci: float | None = None, min_seconds: float = 0.0, warm_calls: int = 0,
            clock=time.perf_counter) -> Timing:
    """Milliseconds per call of each runner, every runner once per round, rounds 0, 1, ... until a stop.

    The order within a round is shuffled (seeded): in a fixed order a variant always runs right after
    the same neighbour, whose cache footprint it then pays for. With `warm_calls`, each timed call follows that
    many untimed calls of the same runner: the time of a warm call, which does not depend on how many other
    runners share the round (a cold call of a microsecond model carries the previous runners' cache footprint:
    in a round of 13 the demo's int8 ratios to float32 read 5-8 % nearer 1 than in a pair; BENCHMARKS.md). Rounds stop at `max_rounds`; when
    `budget_s` seconds (warm-up included) are spent; or, with `rel_ci`, after at least `min_rounds` and
    `min_seconds` once every median's 95 % interval is within ±rel_ci of it. At least one round always runs, and
    a round is never cut short: each runner has the same number of samples.
    """
    start = clock()
    names = list(runners)

    def spent(share: float = 1.0) -> bool:
        return budget_s is not None and clock() - start >= budget_s * share

    # warm-up interleaved too, and capped at a tenth of the budget: one round of a large model may take seconds
    for i in range(warmup):
        for run in runners.values():
            run(i)
        if spent(0.1):
            break
    order = np.random.default_rng(seed)
    times: dict[str, list] = {name: [] for name in names}
    rounds, stopped, next_check = 0, "max rounds", max(min_rounds, 1)
    while rounds < max_rounds:
        for k in order.permutation(len(names)):
            name = names[k]
            run = runners[name]
            for _ in range(warm_calls):
                run(rounds)
            t0 = time.perf_counter()
            run(rounds)
            times[name].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
        if on_round:
            on_round()
        if spent():
            stopped = "budget"
            break
        if rel_ci is not None and rounds >= next_check and clock() - start >= min_seconds:  # on a geometric
            # schedule: a sort per runner
            if converged(times, rel_ci):
                stopped = "converged"
                break
            next_check = max(rounds + 1, int(rounds * 1.1))
    return Timing({name: np.asarray(ms) for name, ms in times.items()}, rounds, stopped)


def summarize(ms: np.ndarray) -> dict:
    """Median with its 95 % interval (order statistics of all rounds and of the medians of 10 consecutive
    blocks of rounds, `stats.median_ci_series`: a machine drifting during the run widens it), tail percentiles
    and quantiles, in ms. `ms` is in the order the rounds ran. Fewer than 6 rounds (a large model on a short
    budget) have no 95 % interval: ci95 is None, not the rounds' range, which would claim a precision
    they do not have (one round: a zero-width interval)."""
    ms = np.asarray(ms, dtype=float)
    q = np.percentile(ms, QUANTILES)
    return {
        "median": float(np.median(ms)),
        "ci95": _median_interval(ms),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "n": int(len(ms)),
        "quantiles": {str(p): round(float(v), 6) for p, v in zip(QUANTILES, q)},
    }


def throughput(ms: np.ndarray, batch: int) -> dict:
    """Samples per second from per-batch times: batch / median time, with the median's interval (None below
    6 rounds, as in summarize)."""
    ci = _median_interval(ms)
    return {"batch": batch, "samples_per_s": batch * 1e3 / float(np.median(ms)),
            "ci95": None if ci is None else [batch * 1e3 / ci[1], batch * 1e3 / ci[0]], "n": int(len(ms))}


def _median_interval(ms) -> list[float] | None:
    """The rounds' drift-aware 95 % interval of the median, or None when they are too few to have one."""
    return stats.median_ci_series(ms) if stats.has_median_ci(len(ms)) else None


def _tensor_bytes(shapes, dtypes) -> int:
    """Bytes of one sample across tensors of these shapes (batch dimension dropped; unknown sizes count 1)."""
    return sum(int(np.prod([max(int(d), 1) for d in s[1:]], dtype=np.int64)) * np.dtype(d).itemsize
               for s, d in zip(shapes, dtypes))


def sample_bytes(model) -> int:
    """Input plus output bytes of one sample of a LiteModel."""
    return _tensor_bytes([t.shape for t in model.inputs + model.outputs],
                         [t.dtype for t in model.inputs + model.outputs])


def fit_batch(asked: int, per_sample: list[int], bound: int = THROUGHPUT_MEMORY) -> int:
    """The largest batch up to `asked` at which each model's input+output bytes stay within `bound`; at least 1."""
    largest = max([*per_sample, 1])
    return max(1, min(asked, bound // largest))


def vs_anchor(times: dict[str, np.ndarray], anchor: str | None) -> dict[str, dict]:
    """Each runner's per-round ratio of its time to the anchor's in the same round (paired: drift between rounds
    cancels), as a median with its 95 % interval (None below 6 rounds); nothing without the anchor."""
    if anchor is None or anchor not in times:
        return {}
    base = np.asarray(times[anchor], dtype=float)
    out = {}
    for name, ms in times.items():
        if name == anchor:
            continue
        r = np.asarray(ms, dtype=float) / np.maximum(base, 1e-12)
        out[name] = {"median": float(np.median(r)), "ci95": _median_interval(r)}
    return out


def _phase(runners: dict, samples: dict[str, int], size: int, asked: int, budget_s: float, reporter, *,
           min_rounds: int, max_rounds: int, rel_ci: float, seed: int, label: str = "",
           anchor: str | None = None, throughput_phase: bool | None = None) -> dict[str, dict]:
    """One interleaved phase: batch-1 latency summaries or throughput at `size`, per runner (`throughput_phase`;
    None: by size, throughput when size > 1; a throughput batch lowered to 1 is still the throughput phase)."""
    throughput_phase = size != 1 if throughput_phase is None else throughput_phase
    with reporter.task(f"Timing{' ' + label if label else ''} (batch {size})", None) as advance:
        timing = latency(runners, max_rounds, warmup=3 if throughput_phase else 10, on_round=advance, seed=seed,
                         budget_s=budget_s, min_rounds=min_rounds, rel_ci=rel_ci, min_seconds=MIN_PHASE_S,
                         warm_calls=0 if throughput_phase else WARM_CALLS)
        advance(0, note=f"{timing.rounds} round{'' if timing.rounds == 1 else 's'}, {timing.stopped}")
    out = {}
    ratios = {} if throughput_phase else vs_anchor(timing.times, anchor)
    for name, ms in timing.times.items():
        if not throughput_phase:
            out[name] = {"latency_ms": {**summarize(ms), "batch": samples[name], "stopped": timing.stopped}}
            if name in ratios:
                out[name]["latency_ms"][f"vs_{anchor}"] = ratios[name]
        else:
            out[name] = {"throughput": {**throughput(ms, samples[name]), "batch_asked": asked,
                                        "stopped": timing.stopped}}
    return out


def run_phases(groups: list, per_sample: list[int], batch: int, time_budget: float, reporter, *, rounds: int,
           max_rounds: int, rel_ci: float, memory_bound: int, seed: int,
           anchor: str | None = None, done=None) -> tuple[dict[str, dict], int]:
    """Batch-1 latency, then throughput at the batch that fits `memory_bound`, sharing `time_budget` seconds.

    `groups` are (label, number of runners, make_runners), timed one group after the other, each in a
    batch-1 phase and a throughput phase of its own; `make_runners(size)` gives name -> (runner, samples
    per call) for one batch size. Each phase's share of the budget is proportional to its number of runners (one group:
    half for batch 1, half for throughput); a phase that stops early leaves its time to the next, and one that
    overruns (its last round, or making the runners: tracing a Keras model) takes nothing from the next, so
    the Keras row's phases, the last and the shortest, are not left a single round (the demo's were, once
    phases ran for 2 s: BENCHMARKS.md). Runners are dropped at the end of their phase, and `done(k)` is called
    after group k's phases (to release what it held). An `anchor` timed in several groups keeps its first
    group's figures; every other runner gets its per-round ratio to the anchor of its own group (`vs_anchor`).
    Returns name -> its summaries, and the throughput batch.
    """
    result: dict[str, dict] = {}
    used = fit_batch(batch, per_sample, memory_bound)
    total, left = 2 * sum(count for _, count, _ in groups) or 1, 0.0
    for k, (label, count, make) in enumerate(groups):
        for phase_no, size in enumerate((1, used) if count else ()):
            runners = make(size)
            budget_s, begun = time_budget * count / total + left, time.perf_counter()
            phase = _phase({k: r for k, (r, _) in runners.items()}, {k: n for k, (_, n) in runners.items()}, size,
                           batch, budget_s, reporter, min_rounds=rounds, max_rounds=max_rounds, rel_ci=rel_ci,
                           seed=seed, label=label, anchor=anchor, throughput_phase=phase_no == 1)
            left = max(budget_s - (time.perf_counter() - begun), 0.0)
            del runners
            for name, value in phase.items():
                if name == anchor and all(key in result.get(name, {}) for key in value):
                    continue  # the anchor's figures are its first group's
                result.setdefault(name, {}).update(value)
        if done is not None:
            done(k)
    return result, used


def measure(source, lite: dict, feeds: dict, x, batch: int = 32, rounds: int = MIN_ROUNDS, reporter=None,
            reference: str = REFERENCE, *, time_budget: float = TIME_BUDGET_S, rel_ci: float = REL_CI,
            max_rounds: int = MAX_ROUNDS, memory_bound: int = THROUGHPUT_MEMORY, seed: int = 0) -> dict[str, dict]:
    """Batch-1 latency, then throughput, each phase interleaved, on `time_budget` seconds of timing in all
    (making the runners and a phase's last round come on top: see `run_phases`).

    Batch 1 may use half the budget, throughput the rest. Each phase stops when its share is spent, or
    once every median's 95 % interval is within ±rel_ci of it after at least `rounds` rounds, or at
    `max_rounds`. Throughput runs at `batch`, lowered until one model's input+output bytes fit
    `memory_bound` (the batch used is recorded, with `batch_asked`). A TensorFlow reference is timed in
    phases of its own, after the LiteRT variants: interleaved with them it slowed each by 15-25 % at
    batch 1 on the demo (BENCHMARKS.md), which `quantbench bench` of the same files would not reproduce.

    Args:
        source: the float model (`models.Source`), timed as the row `reference`.
        lite: variant name -> LiteModel; feeds: variant name -> its inputs, in its own input order.

    Returns: name -> {"latency_ms": summarize(...) + batch, stopped; "throughput": throughput(...) +
        batch_asked, stopped}; `n` is the number of rounds run. Each variant (and a reference given as a
        .tflite file) also gets "xnnpack_refused": XNNPACK's reason when it refused the file, so that LiteRT's
        built-in kernels were timed, else None.
    """
    reporter = reporter or Silent()
    ref_bytes = _tensor_bytes([*source.input_shapes, *source.output_shapes],
                              [*source.input_dtypes, *["float32"] * len(source.output_shapes)])

    def variants(size):
        return {name: (lite_runner(m, feeds[name], size), samples_per_call(m, size)) for name, m in lite.items()}

    def float_model(size):
        return {reference: (reference_runner(source, x, size), _reference_samples(source, size))}

    def both(size):
        return {**float_model(size), **variants(size)}

    groups = [("", len(lite) + 1, both)] if source.lite is not None else \
        [("", len(lite), variants), (reference, 1, float_model)]
    timed = run_phases(groups, [ref_bytes, *(sample_bytes(m) for m in lite.values())], batch, time_budget,
                   reporter, rounds=rounds, max_rounds=max_rounds, rel_ci=rel_ci, memory_bound=memory_bound,
                   seed=seed)[0]
    # read after the timing: XNNPACK may refuse a model at its first run
    for name, m in {**lite, reference: source.lite}.items():
        if m is not None:
            timed[name]["xnnpack_refused"] = m.delegate_fallback
    return timed


def measure_groups(source, load: Callable, groups: list[list[str]], x, batch: int = 32, rounds: int = MIN_ROUNDS,
                   reporter=None, reference: str = REFERENCE, *, time_budget: float | None = TIME_BUDGET_S,
                   rel_ci: float = REL_CI, max_rounds: int = MAX_ROUNDS, memory_bound: int = THROUGHPUT_MEMORY,
                   seed: int = 0, anchor: str = "float32", io_bytes: dict | None = None) -> dict[str, dict]:
    """`measure`, holding only one group of interpreters at a time: each group of variant names (the anchor,
    float32, in every one) is loaded by `load(name) -> (LiteModel, feed)` when its phases start and released
    after them, so the timing's memory is the largest group's, not every variant's. Every variant but the
    anchor gets `latency_ms.vs_<anchor>`, its per-round ratio to the anchor timed in the same rounds; the
    anchor's own figures are its first group's. One group of every variant times exactly as `measure` does.
    A TensorFlow reference is timed last, alone (see `measure`); a .tflite reference joins the first group.
    `io_bytes`: name -> input+output bytes of one sample, for the throughput batch's I/O bound."""
    import gc

    reporter = reporter or Silent()
    time_budget = TIME_BUDGET_S if time_budget is None else time_budget
    held: dict = {"models": {}, "feeds": {}, "group": None}
    refused: dict[str, str | None] = {}

    def make_for(k: int, names: list[str], with_reference: bool):
        def make(size):
            if held["group"] != k:
                release(None)
                for name in names:
                    held["models"][name], held["feeds"][name] = load(name)
                held["group"] = k
            runners = {name: (lite_runner(m, held["feeds"][name], size), samples_per_call(m, size))
                       for name, m in held["models"].items()}
            if with_reference:
                runners[reference] = (reference_runner(source, x, size), _reference_samples(source, size))
            return runners
        return make

    def release(_k):
        for name, m in held["models"].items():  # read after the timing: XNNPACK may refuse a model at its first run
            refused[name] = m.delegate_fallback
        held["models"].clear()
        held["feeds"].clear()
        held["group"] = None
        gc.collect()

    lite_ref = source.lite is not None
    groups = groups or ([[]] if lite_ref else [])  # every variant failed: a .tflite reference is timed alone
    # a .tflite reference that is the anchor itself (a float .tflite studied) is in every group, else in the first
    joins = [lite_ref and (k == 0 or reference == anchor) for k in range(len(groups))]
    plan = [(f"group {k + 1}/{len(groups)}" if len(groups) > 1 else "", len(g) + joins[k],
             make_for(k, g, joins[k])) for k, g in enumerate(groups)]
    if not lite_ref:
        plan.append((reference, 1, lambda size: {reference: (reference_runner(source, x, size),
                                                              _reference_samples(source, size))}))
    ref_bytes = _tensor_bytes([*source.input_shapes, *source.output_shapes],
                              [*source.input_dtypes, *["float32"] * len(source.output_shapes)])
    timed = run_phases(plan, [ref_bytes, *(io_bytes or {}).values()], batch, time_budget, reporter, rounds=rounds,
                   max_rounds=max_rounds, rel_ci=rel_ci, memory_bound=memory_bound, seed=seed, anchor=anchor,
                   done=release)[0]
    release(None)
    for name, why in refused.items():
        timed[name]["xnnpack_refused"] = why
    if lite_ref:
        timed[reference]["xnnpack_refused"] = source.lite.delegate_fallback
    if len(groups) > 1:
        for k, g in enumerate(groups):
            for name in g:
                if name != anchor or k == 0:
                    timed[name]["latency_ms"]["group"] = k + 1
    return timed
