"""The study: a plan of tasks (convert, evaluate in shards, side studies, timing) run by an executor, then
the decision and the report. Memory is bounded by design: data and outputs live in `.npy` files that every
process reads a chunk at a time, and an interpreter lives only as long as its task."""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
from pathlib import Path

import numpy as np

from ..core import machine, memory
from ..core.errors import InputError
from ..core.files import check_new_dir, signals_held, staged_dir
from ..core.progress import Silent
from ..core.version import __version__
from ..engines import base as engines
from ..engines.converter import as_inputs, as_source
from ..engines.techniques import get, resolve
from ..executors import local as executor
from ..executors.plan import Died, Key, Task
from ..inputs import data, models
from ..measure import evaluate, timing as bench
from ..measure.outputs import TaskSpec
from ..record.results import REFERENCE, Results, Variant
from ..report import report
from . import recommend, tasks
from .config import StudyConfig

SHARD = 512  # evaluation samples per task at most (tasks.shard_rows): shards of one variant run in parallel


def _spill(folder: Path, stem: str, arrays: list, chunk: int = 256) -> None:
    """Write arrays (or a Dataset's rows) to `stem_i.npy`, a chunk at a time: every process maps them."""
    if isinstance(arrays, data.Dataset):  # written with plain writes: a map would hold every page in our RSS
        n, first = len(arrays), arrays.chunk(0, 1)
        files = []
        for i, a in enumerate(first):
            f = open(folder / f"{stem}_{i}.npy", "wb")
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(a.dtype),
                                                     "fortran_order": False, "shape": (n, *a.shape[1:])})
            files.append(f)
        try:
            for start in range(0, n, chunk):
                for f, a in zip(files, arrays.chunk(start, start + chunk)):
                    f.write(np.ascontiguousarray(a).tobytes())
        finally:
            for f in files:
                f.close()
        return
    for i, a in enumerate(arrays):
        np.save(folder / f"{stem}_{i}.npy", np.asarray(a))


def _model_file(source, folder: Path, work: Path, save_keras: bool) -> tuple[str, str | None, int | None]:
    """A file every process can load the model from, and the reference row's path and bytes for the table."""
    if save_keras:
        with signals_held():  # Ctrl-C inside Keras's zip writer would surface as zipfile's error, not as itself
            source.keras.save(folder / "model.keras")
        return str(folder / "model.keras"), "model.keras", (folder / "model.keras").stat().st_size
    if source.path is not None:
        return str(source.path), str(source.path), source.size_bytes
    legacy = type(source.keras).__module__.startswith("tf_keras")
    path = work / ("model.h5" if legacy else "model.keras")
    try:
        with signals_held():
            source.keras.save(path)
    except Exception:  # a model Keras cannot save (custom objects): only this process can run its tasks
        return "", None, None
    return str(path), None, None


def run_study(model, evaluation, calib, out="runs/study", config: StudyConfig | None = None, *,
              data_info: dict | None = None, settings: dict | None = None, save_keras: bool = False,
              artifacts: dict[str, bytes] | None = None, train=None, calib_pool=None, unsafe: bool = False,
              runner=None, reporter=None, spec: TaskSpec | None = None, metric=None,
              choices: list | None = None) -> Results:
    """Convert, evaluate and time `model` with each technique of `config`; write everything into `out`.

    Args:
        model: a Keras model or a `quantbench.inputs.models.Source` (float).
        evaluation: a `data.Dataset` (or an input array) to evaluate on; labels optional.
        calib: calibration inputs (array, list of arrays or Dataset), kept apart from `evaluation`.
        out: the study folder; refused if it exists and is not empty, unless `config.force` (see `files`).
        config: the techniques, the goal (budget, target, optimize: techniques that cannot serve the target are
            skipped before converting; `recommended.tflite` is the choice), threads and batch of the timing,
            workers or Ray, time and memory budgets (see `StudyConfig`). With `config.qat_epochs` > 0 the row
            qat-int8 is added: fine-tuned on `train` = (x, y), else on `calib` against the float model's
            outputs. `config.calib_sizes` draw from `calib_pool` (default: `calib`).
        save_keras: write the Keras model into the folder as `model.keras` (the demo does).
        artifacts: more files to write into the folder, by name.
        runner: an executor to run the tasks on (used as is and not closed), instead of `workers` / `ray`.
        spec: how each output is scored (`outputs.TaskSpec`: --task, --threshold, --output).
        metric: a function (labels, outputs) -> number, higher is better, or (function, name): the user's own
            metric, held to goal.max_metric_drop.
        choices: what the caller chose that the user did not say ({"choice", "text"} each), kept in
            Results.choices with the study's own (a throughput batch lowered to fit the memory).
    """
    config = config or StudyConfig()
    techniques, goal, seed, threads, batch = config.techniques, config.goal, config.seed, config.threads, config.batch
    qat_epochs, calib_sizes, time_budget, max_memory = (config.qat_epochs, config.calib_sizes, config.time_budget,
                                                        config.max_memory)
    workers, ray, force = config.workers, config.ray, config.force
    reporter = reporter or Silent()
    budget = getattr(runner, "budget", None) or memory.budget(max_memory)  # compare's executor has it already
    time_budget = bench.TIME_BUDGET_S if time_budget is None else time_budget
    source = model if isinstance(model, models.ModelInfo) else as_source(model)
    if not isinstance(evaluation, data.Dataset):
        evaluation = data.Dataset([evaluation] if not isinstance(evaluation, list) else evaluation, None, "array")
    spec = (spec or TaskSpec()).check(source.output_names)
    metric = _metric(metric, goal)
    truth = data.truth(evaluation.labels(), source, spec, f"{evaluation.origin} (labels)")
    reference_row = "float32" if source.lite is not None else REFERENCE  # a float .tflite is its own float32 row
    techniques, skipped, order = _chosen(resolve(techniques), reference_row, qat_epochs, goal)
    calib = None if calib is None else as_inputs(calib)
    pool = _calibration_pool(calib, calib_pool, calib_sizes)
    run = runner or executor.make(_default_workers(source) if workers is None and not ray else workers, ray, budget)
    if getattr(run, "budget", False) is None:
        run.budget = budget  # a caller's executor (compare's) keeps this study's budget
    with staged_dir(out, force) as folder, (contextlib.nullcontext() if runner else run), \
            memory.PeakSampler() as sampler:
        _ask_nodes(run, goal)
        job, reference_file, run = _stage(folder, run, source, evaluation, truth, calib, pool, train, qat_epochs,
                                          seed, unsafe, save_keras, artifacts, spec, metric is not None)
        rows, streams, converted = _convert_and_evaluate(run, job, techniques, reference_row, reporter)
        metrics = evaluate.finish(streams, reference_row, job.labels, list(source.output_names), spec, metric)
        studies = _side_studies(run, job, techniques, converted, metrics, reference_row, goal, calib_sizes, seed,
                                source, reporter)
        if "int8-selective" in converted:  # the side studies made it: evaluated like the others
            techniques.append(get("int8-selective"))
            more_rows, more, _ = _convert_and_evaluate(run, job, [], reference_row, reporter,
                                                       evaluate_only={"int8-selective": converted["int8-selective"]})
            rows.update(more_rows)
            streams.update({k: v for k, v in more.items() if k != reference_row})
            metrics = evaluate.finish(streams, reference_row, job.labels, list(source.output_names), spec, metric)
        ok = [name for name in converted if name not in rows]
        mcu_facts = _mcu_facts(run, job, ok, goal, seed, reporter)
        needs = {name: streams[name].memory for name in ok if getattr(streams.get(name), "memory", None)}
        throughput_batch = _throughput_batch(job, ok, batch, needs)
        timed = _timing(run, job, ok, reference_row, threads, throughput_batch, time_budget, reporter, needs, budget)
        timing = timed["timing"]
        shutil.rmtree(job.work)
        held = {**needs, reference_row: getattr(streams.get(reference_row), "memory", None) or {}}
        measured = {name: {**metrics[name], **timing[name], "mcu": mcu_facts.get(name),
                           "memory_bytes": (held.get(name) or {}).get("bytes")} for name in timing}
        variants = _variants(folder, source, reference_row, reference_file, techniques, order, rows, converted,
                             skipped, measured)
        results = Results(
            quantbench_version=__version__, model=source.describe(),
            data={"eval_samples": job.n, "labels": bool(truth), "eval_from": evaluation.origin,
                  "streamed": evaluation.streamed, "labelled_outputs": dict(truth.kinds) if truth else {},
                  **(data_info or {})},
            machine=machine.describe(threads),
            settings={**(settings or {}), **dataclasses.asdict(goal), "tasks": dict(spec.overrides),
                      "threshold": spec.threshold,
                      "outputs": list(spec.only) if spec.only else None, "metric": metric[1] if metric else None,
                      "workers": getattr(run, "n", 0),
                      "executor": type(run).__name__, "timed_on": run.timed_on, "chunk": job.chunk,
                      "throughput_batch": timed["batch"],
                      "time_budget_s": time_budget,
                      "memory": {"budget_bytes": budget, "budget_from": "default" if max_memory is None else
                                 "--max-memory", "peak_bytes": max(sampler.peak, memory.tree_rss()),
                                 "workers_asked": getattr(run, "n", 0),
                                 "workers_ran": getattr(run, "ran", getattr(run, "n", 0)),
                                 "per_worker_bytes": getattr(run, "per_worker", None),
                                 "timing_groups": timed["groups"]}},
            variants=variants, studies=studies,
            degenerate_outputs=evaluate.degenerate_from(streams[reference_row], list(source.output_names),
                                                        bool(truth)),
            choices=[*(choices or []), *_lowered_batch(timed["batch"], batch)])
        results = _recommend(results, goal, folder)
        results.save(folder / "results.json")
        with reporter.task("Writing report", 1) as advance:
            report.write(Results.load(folder / "results.json"), folder, force=True)  # from the JSON alone
            advance(note="report.html")
    return results


def _ask_nodes(run, goal) -> None:
    """What the study needs of a cluster's nodes beyond quantbench itself, asked of them before any work."""
    if hasattr(run, "require") and goal.branch.tflite_micro:
        from ..measure import mcu

        run.require(mcu.MODULE, "--target mcu runs the TFLite Micro interpreter (the package tflite-micro) on "
                    "the nodes", "mcu")


def _lowered_batch(used: int, asked: int) -> list[dict]:
    """The choice of a throughput batch below --batch, when the memory made it; else none."""
    if used >= asked:
        return []
    return [{"choice": "throughput_batch", "text": f"Throughput was measured at batch {used}, not at the {asked} "
             f"of --batch: a larger batch would not fit the memory an interpreter may hold."}]


def _chosen(techniques, reference_row: str, qat_epochs: int, goal) -> tuple[list, dict, list[str]]:
    """The techniques to make for the goal's target, those skipped with the reason, and the order asked."""
    techniques = [t for t in techniques if t.name != reference_row]
    if qat_epochs > 0 and not any(engines.of(t).fine_tunes for t in techniques):
        techniques = [*techniques, get("qat-int8")]
    if not all(engines.of(t).asked_for for t in techniques):
        raise InputError("int8-selective cannot be asked for: the recommendation makes it when no integer variant "
                         "meets --max-accuracy-drop. Fix: drop it from --techniques; set the budget instead.")
    order = [t.name for t in techniques]
    techniques, skipped = recommend.plan(techniques, goal.target)
    return techniques, skipped, order


def _calibration_pool(calib, calib_pool, calib_sizes):
    """What `--calib-sizes` draws from (default: the calibration samples), None without it; sizes checked."""
    if not calib_sizes:
        return None
    pool = calib if calib_pool is None else (calib_pool if isinstance(calib_pool, data.Dataset)
                                             else as_inputs(calib_pool))
    if pool is None:
        raise InputError("--calib-sizes needs calibration samples to draw from, and none were given. "
                         "Fix: pass --calib FILE, or drop --calib-sizes.")
    pool_size = len(pool) if isinstance(pool, data.Dataset) else len(pool[0])
    for size in calib_sizes:
        if not 1 <= size <= pool_size:
            raise InputError(f"--calib-sizes asks for {size} samples; the calibration pool has {pool_size}. "
                             f"Expected sizes from 1 to {pool_size}. Fix: pass smaller sizes, or more data.")
    return pool


def _stage(folder: Path, run, source, evaluation, truth, calib, pool, train, qat_epochs: int, seed: int,
           unsafe: bool, save_keras: bool, artifacts, spec, keep_all: bool):
    """The study's inputs written into the staging folder (data as .npy in `.work/`, where every process reads
    them): the Job, the reference row's (path, bytes), and the executor (this process's, when the model can
    only live here)."""
    work = folder / ".work"
    work.mkdir()
    model_path, ref_path, ref_bytes = _model_file(source, folder, work, save_keras)
    if not model_path and not isinstance(run, executor.InProcess):
        run.close()
        run = executor.InProcess()  # the model exists only in this process
    for name, content in (artifacts or {}).items():
        (folder / name).write_bytes(content)
    _spill(work, "eval", evaluation)
    if calib is not None:
        _spill(work, "calib", calib)
    if pool is not None:
        _spill(work, "pool", pool)
    if qat_epochs > 0 and train is not None:
        _spill(work, "train", as_inputs(train[0]))
        np.save(work / "train_y.npy", np.asarray(train[1]))
    chunk = _chunk(source, evaluation)
    job = tasks.Job(model_path or "<in memory>", unsafe, str(folder), str(work),
                    len(evaluation), len(source.input_names), tuple(source.input_names), tuple(source.output_names),
                    chunk=chunk, shard=tasks.shard_rows(_sample_bytes(source, evaluation), chunk, SHARD),
                    labels=truth, has_calib=calib is not None,
                    has_pool=pool is not None,
                    qat={"epochs": qat_epochs, "train": qat_epochs > 0 and train is not None, "seed": seed},
                    origin=evaluation.origin,
                    exports=source.kind in models.KERAS_KINDS and _model_bytes(source) >= EXPORT_FROM_BYTES,
                    keep_all=keep_all, spec=spec)
    tasks.remember(job, source)
    return job, (ref_path, ref_bytes), run


def _mcu_facts(run, job, names: list[str], goal, seed: int, reporter) -> dict:
    """Every variant on the TFLite Micro interpreter, when the target is a microcontroller (issue 12)."""
    if not goal.branch.tflite_micro:
        return {}
    from ..measure import mcu

    mcu.check_available()
    with reporter.task("TFLite Micro", 1) as advance:
        rows = tuple(int(r) for r in mcu.sample_rows(job.n, mcu.MAX_SAMPLES, seed))
        facts = run.run([Task("mcu", tasks.mcu_facts, (job, names, rows, goal.budget))])["mcu"]
        advance()
    if isinstance(facts, Died):
        raise InputError(f"The TFLite Micro task did not finish: {facts.reason}.")
    return facts


def _timing(run, job, names: list[str], reference_row: str, threads: int, batch: int, time_budget: float,
            reporter, needs: dict | None = None, budget: int | None = None) -> dict:
    """Latency and throughput of the float model and every variant, as one task that runs alone, in groups
    that fit what the budget leaves (`tasks.timing`)."""
    import os

    with reporter.task("Timing (alone)", 1) as advance:
        timed = run.run([Task("timing", tasks.timing, (job, names, reference_row, threads, batch, time_budget,
                                                       needs, budget, os.getpid()), exclusive=True)])["timing"]
        advance()
    if isinstance(timed, Died):
        raise InputError(f"The timing task did not finish: {timed.reason}. Fix: run again with fewer "
                         "techniques or more memory.")
    return timed


def _variants(folder: Path, source, reference_row: str, reference_file, techniques, order: list[str], rows: dict,
              converted: dict, skipped: dict, measured: dict) -> list[Variant]:
    """The table's rows: the reference, each technique in the order asked (measured, failed or skipped)."""
    from ..runtime.litert import LiteModel

    def row(name, engine, path, size, seconds, ins, outs):
        return Variant(technique=name, engine=engine, status="ok", path=path, bytes=size, input_dtype=ins,
                       output_dtype=outs, convert_s=seconds, **measured[name])

    ref_path, ref_bytes = reference_file
    variants = [row(reference_row, "input" if source.lite is not None else source.kind, ref_path, ref_bytes, None,
                    ",".join(source.input_dtypes), ",".join(source.output_dtypes))]
    for t in sorted(techniques, key=lambda t: order.index(t.name) if t.name in order else len(order)):
        if t.name in rows:
            variants.append(rows[t.name])
            continue
        info = converted[t.name]
        m = LiteModel(folder / info["path"], allocate=False)  # its I/O dtypes only
        variants.append(row(t.name, t.engine, info["path"], (folder / info["path"]).stat().st_size, info["seconds"],
                            ",".join(i.dtype for i in m.inputs), ",".join(o.dtype for o in m.outputs)))
    return variants + [Variant(name, get(name).engine, "skipped", error=why) for name, why in skipped.items()]


WORKERS_FROM_BYTES = 2 ** 20  # a model this big pays for a worker's start (TensorFlow's import, the model's load)
EXPORT_FROM_BYTES = 2 ** 20  # ... and for exporting it once for the converter: the digits CNN's export (0.6 s)
# saves its conversions nothing, MobileNetV2's (7 s) saves 4-6 s on each (BENCHMARKS.md)


def _model_bytes(source) -> int:
    """The model's size: its file or folder, else its weights as float32."""
    if isinstance(source, Path):  # a model file or SavedModel folder, before anything loads it
        return sum(f.stat().st_size for f in source.rglob("*") if f.is_file()) if source.is_dir() else \
            (source.stat().st_size if source.exists() else 0)
    if source.path is not None:
        return source.size_bytes
    return sum(int(np.prod(w.shape)) * 4 for w in getattr(source.keras, "weights", []))


def _default_workers(source) -> int:
    """One worker per usable core for a model of 1 MB or more; this process for smaller ones."""
    return executor.usable_cores() if _model_bytes(source) >= WORKERS_FROM_BYTES else 0


def _chunk(source, evaluation) -> int:
    """Samples per predict call: a float32 conversion's tensors bound what one sample costs an interpreter."""
    if source.lite is not None:
        return tasks.chunk_rows(source.lite_bytes())
    per_sample = sum(int(np.prod([d for d in s[1:] if d > 0] or [1])) * 4
                     for s in [*source.input_shapes, *source.output_shapes])
    # activations are unknown before converting: bound by the inputs and outputs, times a margin of 16
    return int(max(1, min(32, tasks.MEMORY_BOUND // max(16 * per_sample, 1))))


def _sample_bytes(source, evaluation) -> int:
    """Bytes of one evaluation sample's inputs (as the data holds them) and of the float model's outputs for it."""
    inputs = sum(a[:1].nbytes for a in evaluation.chunk(0, 1))
    return inputs + sum(int(np.prod([d for d in s[1:] if d > 0] or [1])) * 4 for s in source.output_shapes)


def _throughput_batch(job, names: list[str], batch: int, needs: dict | None = None) -> int:
    """The largest batch up to `batch` at which every variant's interpreter stays within the memory bound: from
    the memory measured at evaluation (`tasks.interpreter_memory`: the arena's activations, not only the I/O
    tensors), else from the file's tensors at batch 1. The timing lowers it further to fit the budget."""
    needs = needs or {}
    smallest = batch
    for n in names:
        if needs.get(n):
            m = needs[n]
            fits = (tasks.MEMORY_BOUND - m["fixed"]) // m["per_sample"] if m["per_sample"] else batch
        else:
            fits = tasks.chunk_rows(job.path(f"{n}.tflite").read_bytes())
        smallest = min(smallest, fits)
    return int(max(1, min(batch, smallest)))


def _convert_and_evaluate(run, job, techniques, reference_row, reporter, evaluate_only=None):
    """Conversions and the float model's outputs, then every variant's evaluation in shards, as one plan.

    Returns the failed or skipped rows, the metric streams (merged over shards) and the converted files.
    """
    plan, converted, made_by = [], dict(evaluate_only or {}), {}
    shards = [(a, min(a + job.shard, job.n)) for a in range(0, job.n, job.shard)]
    if evaluate_only is None:  # the float model's outputs, a task per shard: each evaluation shard needs its own
        plan += [Task(Key("reference", at=a), tasks.reference, (job, a, b)) for a, b in shards]
        exported = ()
        if job.exports:  # the Keras model traced and exported once, not once per conversion
            plan.append(Task(Key("export"), tasks.export, (job,), leaky=True))
            exported = (Key("export"),)
        has_float = any(t.name == "float32" for t in techniques)

        def needs(engine):
            return (Key("convert", "float32"),) if engine.needs_float_tflite and has_float else exported

        for engine in engines.registered():
            family = engine.family(techniques) if job.has_calib else []
            if len(family) > 1:  # one calibration for all of them: byte-identical files, several times faster
                key = Key("family", engine.name)
                plan.append(Task(key, tasks.convert_family, (job, family), needs=needs(engine), leaky=engine.leaks))
                made_by.update({t.name: key for t in family})
        for t in techniques:
            if t.name not in made_by:
                engine = engines.of(t)
                plan.append(Task(Key("convert", t.name), tasks.convert, (job, t), needs=needs(engine),
                                 leaky=engine.leaks))
                made_by[t.name] = Key("convert", t.name)
    names = list(converted) or [t.name for t in techniques]
    for name in names:
        plan += [Task(Key("evaluate", name, a), tasks.evaluate_shard, (job, name, a, b),
                      needs=() if evaluate_only else (Key("reference", at=a), made_by[name])) for a, b in shards]
    rows, streams = {}, {}

    def done(task, result):
        if task.fn is tasks.reference and isinstance(result, evaluate.Stream):
            tasks.keep(job, task.args[1], result)  # before the shard's evaluations start
        advance(note=str(task.key))

    with reporter.task("Converting, evaluating" if evaluate_only is None else "Evaluating", len(plan)) as advance:
        results = run.run(plan, on_done=done)
    if evaluate_only is None:
        streams[reference_row] = _merged([results[Key("reference", at=a)] for a, _ in shards])
    for key, result in results.items():
        if key.kind in ("convert", "family"):
            made = result if key.kind == "family" and not isinstance(result, Died) else \
                {n: result for n, by in made_by.items() if by == key}
            for name, one in made.items():
                if isinstance(one, Died):
                    rows[name] = Variant(name, get(name).engine, "failed", error=one.reason)
                elif one["status"] != "ok":
                    rows[name] = Variant(name, get(name).engine, one["status"], error=one["error"])
                else:
                    converted[name] = one
    if isinstance(streams.get(reference_row), Died):
        reason = streams[reference_row].reason
        raise InputError(f"The float model could not be run on the evaluation data: {reason}. Fix: check the "
                         "model and data, or free memory.")
    for name in names:
        if name in rows:
            continue
        parts = [results[Key("evaluate", name, a)] for a, _ in shards]
        bad = next((p for p in parts if not isinstance(p, evaluate.Stream)), None)
        if bad is not None:
            error = bad.reason if isinstance(bad, Died) else bad["error"]
            rows[name] = Variant(name, get(name).engine, "failed", error=error)
            continue
        streams[name] = _merged(parts)
    return rows, streams, converted


def _merged(parts: list):
    """Shards' streams as one, with the memory measured in the first (what its interpreter or model held); the
    first shard that did not finish instead."""
    died = next((p for p in parts if isinstance(p, Died)), None)
    if died is not None:
        return died
    stream, held = parts[0], getattr(parts[0], "memory", None)
    for p in parts[1:]:
        stream = stream.merge(p)
    stream.memory = held
    return stream


def _side_studies(run, job, techniques, converted, metrics, reference_row, goal, calib_sizes, seed, source,
                  reporter) -> dict:
    """Per-layer int8 error, calibration sizes and (when no integer variant met the budget) the selective
    search, as one plan."""
    plan = []
    names = {t.name for t in techniques}
    if source.lite is None and job.has_calib and names & {"int8-fallback", "int8-only", "uint8-only"} & set(converted):
        plan.append(Task(Key("layer_errors"), tasks.layer_errors, (job,), leaky=True))
    if source.lite is None and job.has_calib and recommend.needs_rescue(metrics, reference_row, goal):
        plan.append(Task(Key("selective"), tasks.selective_search, (job, goal), leaky=True))
    if calib_sizes and source.lite is None:  # one conversion per task: workers recycle as they go
        plan += [Task(Key("calibration_size", at=size), tasks.calibration_size, (job, size, seed), leaky=True)
                 for size in calib_sizes]
    if not plan:
        return {}
    with reporter.task("Side studies", len(plan)) as advance:
        results = run.run(plan, on_done=lambda task, result: advance(note=str(task.key)))
    studies = {}
    sizes = [(key, result) for key, result in results.items() if key.kind == "calibration_size"]
    if sizes:
        studies["calibration_sizes"] = {"technique": "int8-only", "samples": min(job.n, tasks.SIDE_SAMPLES), "rows": [
            {"samples": key.at, "error": result.reason} if isinstance(result, Died) else result
            for key, result in sizes]}
    for key, result in results.items():
        if key.kind == "calibration_size":
            continue
        if isinstance(result, Died):
            studies[key.kind] = {"error": result.reason, "rows": []}
        elif key.kind == "selective":
            studies["selective"] = result["study"]
            if "path" in result:
                converted["int8-selective"] = {"status": "ok", "path": result["path"], "seconds": result["seconds"]}
        else:
            studies[key.kind] = result
    return studies


def _recommend(results: Results, goal, folder: Path) -> Results:
    """The choice, its reasons and the decision tree in the results; the chosen file as recommended.tflite."""
    import dataclasses
    import shutil

    from ..inputs.inspection import inspect

    float_ops = {v.technique: inspect(folder / v.path).float_compute_ops for v in results.variants
                 if v.ok and v.path and v.path.endswith(".tflite") and (folder / v.path).is_file()}
    rec = recommend.choose(results, goal.max_drop_pp, goal.target, goal.optimize, float_ops,
                           max_ram_kb=goal.max_ram_kb, max_flash_kb=goal.max_flash_kb, budget=goal.budget)
    if rec.technique is not None:
        shutil.copyfile(folder / results.variant(rec.technique).path, folder / "recommended.tflite")
    return dataclasses.replace(results, recommendation={**rec.to_dict(), "decision_tree": recommend.tree_rows()})


def study_folder(model, out=None) -> Path:
    """The study's folder: `out`, else runs/<the model file's name without its suffix> (as `compare` writes)."""
    if out is not None:
        return Path(out)
    if isinstance(model, (models.Source, models.ModelInfo)):
        model = model.path or model.name
    return Path("runs") / Path(str(model)).stem


def compare(model, data_path, calib_path=None, out=None, config: StudyConfig | None = None, *,
            calib_size: int | None = None, x_key: str = "x", y_key: str = "y", unsafe: bool = False,
            spec: TaskSpec | None = None, metric=None, runner=None, reporter=None) -> Results:
    """Study a user's model file on a user's data file: every technique of `config`, one table.

    Without `calib_path`, calibration samples come from `data_path` by a seeded split (`config.seed`), and the
    rest is evaluated; with it, all of `data_path` is evaluated. With workers (or Ray), the model file is loaded
    in a worker only: this process never imports TensorFlow.
    """
    config = config or StudyConfig()
    resolve(config.techniques)  # every name checked before any work
    check_new_dir(study_folder(model, out), config.force)  # before any work
    data.check_path(data_path, "--data")  # before the model is loaded (TensorFlow's import takes seconds)
    if calib_path is not None:
        data.check_path(calib_path, "--calib")
    owned = None
    if runner is None and not isinstance(model, models.Source):
        workers = _default_workers(Path(model)) if config.workers is None and not config.ray else config.workers
        owned = runner = executor.make(workers, config.ray, memory.budget(config.max_memory))
    try:
        _ask_nodes(runner, config.goal)
        source = _load_model(model, unsafe, runner)
        return _compare(source, data_path, calib_path, out, config, calib_size=calib_size, x_key=x_key,
                        y_key=y_key, unsafe=unsafe, runner=runner, reporter=reporter, spec=spec, metric=metric)
    finally:
        if owned is not None:
            owned.close()


def _load_model(model, unsafe: bool, runner):
    """The model: described by a worker when there are workers and it needs TensorFlow, else loaded here."""
    if isinstance(model, models.Source):
        return model
    path = Path(model)
    if runner is None or isinstance(runner, executor.InProcess) or path.suffix.lower() == ".tflite" \
            or not path.exists():
        return models.load_model(model, unsafe=unsafe)  # no TensorFlow for a .tflite; missing: the usual error
    result = runner.run([Task("describe", tasks.describe_model, (str(path), unsafe))])["describe"]
    if isinstance(result, Died):
        raise InputError(f"Loading {path} in a worker failed: {result.reason}. Fix: check the file, or pass "
                         "--workers 0 to load it in this process.")
    return result


def _compare(source, data_path, calib_path, out, config: StudyConfig, *, calib_size, x_key, y_key, unsafe, runner,
             reporter, spec, metric) -> Results:
    seed = config.seed
    out = study_folder(source, out)
    check_new_dir(out, config.force)
    spec = (spec or TaskSpec()).check(source.output_names)
    dataset = data.load_data(data_path, source, x_key, y_key, role="--data", spec=spec)
    if calib_path is not None:  # its labels, where they fit, are what QAT learns from
        pool = data.load_data(calib_path, source, x_key, y_key, role="--calib", spec=spec, labels="optional")
        size = min(200, len(pool)) if calib_size is None else calib_size
        if size > len(pool):
            raise InputError(f"--calib-size {size} is larger than the {len(pool)} samples in {calib_path}. "
                             f"Expected at most {len(pool)}. Fix: pass --calib-size {len(pool)} or fewer.")
        calib = data.calibration_sample(pool, min(size, len(pool)), seed)
        info = {"calibration": {"samples": int(len(calib[0])), "from": str(calib_path), "seed": seed}}
        evaluation, train = dataset, pool
        choices = [] if calib_size is not None or size == len(pool) else [{
            "choice": "calibration_sample", "text": f"Calibrated on {size} of the {len(pool)} samples in {calib_path} "
            f"(a seeded draw, seed {seed}); --calib-size sets how many."}]
    else:
        train, evaluation, info = data.split_for_calibration(dataset, calib_size, seed)
        calib = train.arrays()
        held = len(dataset) - info["eval_samples"]
        choices = [{"choice": "evaluation_split", "text": f"Evaluated {info['eval_samples']} of the {len(dataset)} "
                    f"samples in {data_path}: {held} were held out for calibration (a seeded split, seed {seed}). "
                    f"Pass --calib FILE to evaluate all {len(dataset)}."}]
    # QAT learns from the calibration samples, never the evaluation ones: on their labels, else by distillation.
    return run_study(source, evaluation, calib, out, config, reporter=reporter, calib_pool=train, unsafe=unsafe,
                     runner=runner, spec=spec, metric=metric, choices=choices,
                     train=_training(train, source) if config.qat_epochs > 0 else None,
                     data_info={"name": Path(str(data_path)).name, **info, **_classes(data_path)},
                     settings={"seed": seed, "calib_size": calib_size, "threads": config.threads,
                               "batch": config.batch, "qat_epochs": config.qat_epochs})


def _training(train, source):
    """QAT's (inputs, labels) from the calibration pool: its labels where they fit the model's one output."""
    y = data.training_labels(data.truth(train.labels(), source, None, train.origin, labels="optional"), source)
    return (train.arrays(), y) if y is not None else None


def _metric(metric, goal):
    """A user's metric as (function, name), with its budget checked; None without one."""
    if metric is None:
        return None
    fn, name = metric if isinstance(metric, tuple) else (metric, getattr(metric, "__name__", "metric"))
    if not callable(fn):
        raise InputError(f"metric is {fn!r}. Expected a function (labels, outputs) -> number. Fix: pass a function.")
    if goal.max_metric_drop is None:
        raise InputError(f"A metric ({name}) was given without its budget. Expected --max-metric-drop X (the most "
                         "the metric may fall below the float model's, in its own units). Fix: pass "
                         "--max-metric-drop, e.g. 0.01.")
    return fn, name


def _classes(data_path) -> dict:
    """An image folder's labels by name, for results.json: {"classes": [name of label 0, of label 1, ...]}."""
    return {"classes": data.class_folders(data_path)} if Path(str(data_path)).is_dir() else {}


DEMO_TIME_BUDGET_S = 10.0  # the digits CNN's timing: its small variants converge well within it


def demo(out="runs/demo", config: StudyConfig | None = None, *, epochs: int = 10, calib_size: int = 200,
         reporter=None) -> Results:
    """The reference experiment: train the article's CNN on digits, then study every technique of `config`
    (its time budget defaults to 10 s here: the digits CNN's small variants converge well within it)."""
    reporter = reporter or Silent()
    config = config or StudyConfig()
    if config.time_budget is None:
        config = dataclasses.replace(config, time_budget=DEMO_TIME_BUDGET_S)
    seed = config.seed
    resolve(config.techniques)  # every name checked before training
    check_new_dir(out, config.force)  # fail before training, not after
    split = data.digits()
    calib = data.calibration_sample(split.x_train, calib_size, seed)
    with models.deterministic(seed), reporter.task("Training", epochs) as advance:
        model = models.reference_cnn()
        models.train(model, split.x_train, split.y_train, epochs,
                     on_epoch=lambda e, logs: advance(note=f"loss {logs['loss']:.4f}"))
    return run_study(
        model, data.Dataset([split.x_test], split.y_test, "sklearn digits test split"), calib, out, config,
        reporter=reporter, save_keras=True, train=([split.x_train], split.y_train), calib_pool=split.x_train,
        # the data beside the model, so `quantbench compare` can be tried on it
        artifacts={"digits-train.npz": data.npz_bytes(x=split.x_train, y=split.y_train),
                   "digits-test.npz": data.npz_bytes(x=split.x_test, y=split.y_test)},
        data_info={"name": "sklearn digits", "train": len(split.x_train),
                   "calibration": {"samples": calib_size, "from": "train split", "seed": seed}},
        settings={"epochs": epochs, "seed": seed, "calib_size": calib_size, "threads": config.threads,
                  "batch": config.batch, "qat_epochs": config.qat_epochs, "time_budget": config.time_budget})
