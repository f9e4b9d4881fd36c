"""The tasks of a study, each a function that runs in any process: this one, a worker, or a Ray node.

Everything a task needs travels in a `Job` (paths, not arrays): the model file, the staging folder, and the
work folder where the study keeps its data as `.npy` files that every process memory-maps. A task reads its
inputs a chunk at a time and returns small things (a stream of metrics, a file name, a dict), so memory
stays flat whatever the size of the evaluation set.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import engines, evaluate, verify
from .errors import ConversionError, LiteRTError, TrainingError
from .outputs import TaskSpec, Truth
from .runtime import align
from .techniques import Technique

SIDE_SAMPLES = 256    # evaluation samples the side studies (selective search, calibration sizes) use at most
TIMING_SAMPLES = 64   # distinct samples the timing cycles through
LAYER_ERROR_SAMPLES = 32  # calibration samples the per-layer error study runs: on MobileNetV2, 32 give the same
                          # ten worst layers as 64 in 15 s instead of 24 s (BENCHMARKS.md)
MEMORY_BOUND = 256 * 2 ** 20  # bytes of tensors one chunk may hold in one interpreter
EXPORTED = "savedmodel"  # in the work folder: the Keras model as the converter exports it, made once per study


@dataclass(frozen=True)
class Job:
    """A study's shared facts, by path: picklable, small, the same in every process."""

    model: str                 # the float model's file or SavedModel folder
    unsafe: bool
    folder: str                # the staging folder the variants are written into
    work: str                  # scratch folder for data (.npy), removed before the study is moved into place
    n: int                     # evaluation samples
    n_inputs: int
    input_names: tuple
    output_names: tuple
    chunk: int                 # samples per predict call
    labels: Truth | None = None  # labels per output (outputs.Truth), read by the driver only
    has_calib: bool = False
    has_pool: bool = False
    qat: dict = field(default_factory=lambda: {"epochs": 0, "train": False, "seed": 0})
    origin: str = "the evaluation data"
    exports: bool = False      # a Keras 3 model: exported once for the converter (the task `export`)
    keep_all: bool = False     # streams keep every output's values (a user's --metric runs on them)
    spec: TaskSpec = field(default_factory=TaskSpec)  # how outputs are scored (--task, --threshold, --output)

    def path(self, name: str) -> Path:
        return Path(self.folder) / name

    def _arrays(self, stem: str) -> list[np.ndarray]:
        return [np.load(Path(self.work) / f"{stem}_{i}.npy", mmap_mode="r") for i in range(self.n_inputs)]

    def eval_rows(self, start: int, stop: int) -> list[np.ndarray]:
        return [np.asarray(a[start:stop]) for a in self._arrays("eval")]

    def reference_rows(self, start: int, stop: int) -> list[np.ndarray]:
        return [np.asarray(np.load(Path(self.work) / f"reference_{k}.npy", mmap_mode="r")[start:stop])
                for k in range(len(self.output_names))]

    def calib(self) -> list[np.ndarray] | None:
        return [np.asarray(a) for a in self._arrays("calib")] if self.has_calib else None

    def pool(self) -> list[np.ndarray] | None:
        return self._arrays("pool") if self.has_pool else None  # memory-mapped: a draw reads only its rows

    def train(self):
        if not self.qat["train"]:
            return None
        x = [np.asarray(a) for a in self._arrays("train")]
        y = np.load(Path(self.work) / "train_y.npy")
        return (x if len(x) > 1 else x[0], y)

    def labels_of(self, start: int, stop: int):
        return None if not self.labels else self.labels.rows(slice(start, stop))


    def inputs(self) -> engines.Inputs:
        return engines.Inputs(calib=self.calib(), float_tflite=str(self.path("float32.tflite")),
                              qat={"epochs": self.qat["epochs"], "train": self.train(), "seed": self.qat["seed"]})


_SOURCES: dict = {}


def remember(job: Job, source) -> None:
    """Give this process the already-loaded model, so in-process tasks do not load it again."""
    if hasattr(source, "predict"):  # a models.Source, not a ModelInfo
        _SOURCES[(job.model, job.unsafe)] = source


def source_of(job: Job):
    """The float model, loaded once per process."""
    key = (job.model, job.unsafe)
    if key not in _SOURCES:
        from .models import load_model

        _SOURCES[key] = load_model(job.model, unsafe=job.unsafe)
    source = _SOURCES[key]
    exported = Path(job.work) / EXPORTED
    source.exported = exported if exported.is_dir() else None  # this study's export, once the task made it
    return source


# ---- the tasks -------------------------------------------------------------------------------------

def describe_model(path: str, unsafe: bool):
    """Load a model file here (a worker), keep it for the tasks that follow, and describe it."""
    from .models import load_model

    source = load_model(path, unsafe=unsafe)
    _SOURCES[(str(path), unsafe)] = source
    return source.info()


def export(job: Job) -> bool:
    """The Keras model exported once for the converter (`Source.export_for_converter`); False: not exported."""
    return source_of(job).export_for_converter(Path(job.work) / EXPORTED)


def reference(job: Job) -> evaluate.Stream:
    """The float model's outputs on every evaluation sample, written to the work folder a chunk at a time."""
    from numpy.lib.format import open_memmap

    source = source_of(job)
    stream, maps, bad = evaluate.Stream(job.keep_all), None, {}
    for start in range(0, job.n, job.chunk):
        stop = min(start + job.chunk, job.n)
        outs = [np.asarray(o, np.float32) for o in source.predict(job.eval_rows(start, stop))]
        for name, o in zip(job.output_names, outs):  # every figure is measured against these: NaN is refused
            bad[name] = bad.get(name, 0) + evaluate.non_finite(o)
        if maps is None:
            maps = [open_memmap(Path(job.work) / f"reference_{k}.npy", mode="w+", dtype=np.float32,
                                shape=(job.n, *o.shape[1:])) for k, o in enumerate(outs)]
        for m, o in zip(maps, outs):
            m[start:stop] = o
        stream.update(outs, outs)
    for m in maps or []:
        m.flush()
    evaluate.check_counts(bad, job.n, job.origin)
    return stream


def convert(job: Job, technique: Technique) -> dict:
    """One technique's variant, written into the staging folder; a refusal is a row with the engine's reason."""
    source = source_of(job)
    engine = engines.of(technique)
    given = job.inputs()
    reason = engine.skip(source, technique, given)
    if reason:
        return {"status": "skipped", "error": reason}
    try:
        conv = verify.checked(technique, engine.make(source, technique, given))  # a float copy is a failed row
    except (ConversionError, TrainingError) as exc:
        return {"status": "failed", "error": str(exc)}
    path = job.path(f"{technique.name}.tflite")
    path.write_bytes(conv.content)
    return {"status": "ok", "path": path.name, "seconds": round(conv.seconds, 4)}


def convert_family(job: Job, techniques: list[Technique]) -> dict:
    """Techniques one engine makes from one calibration (`Engine.make_family`): a file per technique; a refusal
    or a skip is a row with the engine's reason, and the others go on."""
    source, given = source_of(job), job.inputs()
    engine = engines.of(techniques[0])
    done, members = {}, []
    for t in techniques:
        reason = engine.skip(source, t, given)
        if reason:
            done[t.name] = {"status": "skipped", "error": reason}
        else:
            members.append(t)
    for name, conv in (engine.make_family(source, members, given) if members else {}).items():
        conv = verify.refused(name, conv)  # a float copy is a failed row
        if isinstance(conv, ConversionError):
            done[name] = {"status": "failed", "error": str(conv)}
            continue
        path = job.path(f"{name}.tflite")
        path.write_bytes(conv.content)
        done[name] = {"status": "ok", "path": path.name, "seconds": round(conv.seconds, 4)}
    return {t.name: done[t.name] for t in techniques}


def _refused(name: str, exc: Exception) -> dict:
    reason = getattr(exc, "reason", None) or " ".join(str(exc).split())
    return {"status": "failed", "error": f"{name}: LiteRT cannot run it: {reason}"}


def evaluate_shard(job: Job, name: str, start: int, stop: int):
    """One variant's stream of metrics on samples [start, stop), one interpreter, a chunk at a time."""
    from .runtime import LiteModel

    if not job.path(f"{name}.tflite").is_file():
        return {"status": "not converted", "error": f"{name} was not converted"}  # its row says why
    try:
        model = LiteModel(job.path(f"{name}.tflite"))
    except LiteRTError as exc:  # LiteRT refusing a converted model is a row; quantbench's own bugs surface
        return _refused(name, exc)
    stream = evaluate.Stream(job.keep_all)
    for a in range(start, stop, job.chunk):
        b = min(a + job.chunk, stop)
        feed = align(job.input_names, job.eval_rows(a, b), [t.name for t in model.inputs])
        try:
            outs = model.predict(feed)
        except (LiteRTError, RuntimeError) as exc:  # RuntimeError: LiteRT's invoke refusing, e.g. in XNNPACK
            return _refused(name, exc)
        outs = align([t.name for t in model.outputs], outs if isinstance(outs, list) else [outs], job.output_names)
        why = evaluate.non_finite_error(outs, job.output_names)  # NaN where the float model is finite (checked)
        if why:
            return {"status": "failed", "error": f"{name}: {why}"}
        stream.update(outs, job.reference_rows(a, b))
    return stream


def layer_errors(job: Job, top: int = 10) -> dict:
    """TF's QuantizationDebugger on the calibration samples: the layers int8 hurts most."""
    from . import selective

    calib = [a[:LAYER_ERROR_SAMPLES] for a in job.calib()]
    study = {"techniques": ["int8-fallback", "int8-only", "uint8-only"], "rows": [], "samples": len(calib[0])}
    try:
        rows = selective.layer_errors(source_of(job), calib, top=top)
    except ConversionError as exc:  # the study goes on; the report says why the table is missing
        study["error"] = str(exc)
    else:  # a zero-scale tensor has no finite error: JSON holds null for it, not NaN
        study["rows"] = [{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in r.items()}
                         for r in rows]
    return study


def _side_rows(job: Job) -> tuple[list, list, np.ndarray | None]:
    n = min(job.n, SIDE_SAMPLES)
    return job.eval_rows(0, n), job.reference_rows(0, n), job.labels_of(0, n)


def _outputs_on(content, job: Job, x: list) -> list:
    from .runtime import LiteModel

    model = LiteModel(content)
    outs = model.predict(align(job.input_names, x, [t.name for t in model.inputs]))
    outs = outs if isinstance(outs, list) else [outs]
    return align([t.name for t in model.outputs], outs, job.output_names)


MAX_FLOAT_LAYERS = 10  # the greedy search stops here: past it, int8 is not what is being shipped any more


def selective_search(job: Job, goal) -> dict:
    """int8 with the most sensitive layers kept float, the fewest that meet the budget, judged as the
    recommendation judges (same measurements, every output's gate) on up to SIDE_SAMPLES samples."""
    from . import recommend, selective

    x, ref, y = _side_rows(job)

    def budget_ok(outputs):
        m = evaluate.measure({"ref": ref, "v": outputs}, "ref", y, list(job.output_names), job.spec)
        found = recommend.judge(m["v"], m["ref"], goal.budget)
        return all(f["passed"] for f in found), -recommend.worst_loss(m["v"]["outputs"])

    try:
        found = selective.selective(source_of(job), job.calib(), lambda c: _outputs_on(c, job, x), budget_ok,
                                    max_float_layers=MAX_FLOAT_LAYERS)
    except ConversionError as exc:
        return {"study": {"error": str(exc)}}
    study = {"met": found.met, "float_layers": list(found.float_layers), "conversions": found.conversions,
             "seconds": round(found.seconds, 2), "samples": len(x[0]),
             "steps": [{"float_layers": list(st.float_layers), "bytes": st.bytes, "drop_pp": round(-st.score, 4),
                        "ok": st.ok} for st in found.steps]}
    if not found.met:
        return {"study": study}
    path = job.path("int8-selective.tflite")
    path.write_bytes(found.content)
    return {"study": study, "path": path.name, "seconds": round(found.seconds, 4)}


def calibration_size(job: Job, size: int, seed: int) -> dict:
    """int8-only accuracy (or agreement) with `size` calibration samples drawn from the pool: one conversion."""
    from . import data
    from .conversion import convert as convert_with

    x, ref, y = _side_rows(job)
    calib = data.calibration_sample(job.pool(), size, seed)
    try:
        content = convert_with(source_of(job), "int8-only", calib).content
    except ConversionError as exc:
        return {"samples": size, "error": str(exc)}
    m = evaluate.measure({"ref": ref, "v": _outputs_on(content, job, x)}, "ref", y, list(job.output_names),
                         job.spec)["v"]
    return {"samples": size, "accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci"],
            "agreement": m["agreement"], "bytes": len(content)}


def mcu_facts(job: Job, names: list[str], seed: int, budget=None) -> dict:
    """Every variant on the TFLite Micro interpreter (in a child process of its own), over a seeded draw of
    the evaluation samples: runs?, exact arena, flash, agreement with LiteRT and the float model."""
    from . import mcu

    rows = mcu.sample_rows(job.n, mcu.MAX_SAMPLES, seed)
    inputs = [np.asarray(a[rows]) for a in job._arrays("eval")]
    reference = [np.asarray(np.load(Path(job.work) / f"reference_{k}.npy", mmap_mode="r")[rows])
                 for k in range(len(job.output_names))]
    labels = job.labels.rows(rows) if job.labels else None
    from .runtime import LiteModel

    facts = {}
    with mcu.Worker() as worker:
        for name in names:
            path = job.path(f"{name}.tflite")
            feed = align(job.input_names, inputs, [t.name for t in LiteModel(path).inputs])
            facts[name] = mcu.measure(path, feed, None, reference, labels, list(job.output_names),
                                      worker, budget, job.spec).to_dict()
    return facts


def timing(job: Job, names: list[str], reference_row: str, threads: int, batch: int,
           time_budget: float | None = None) -> dict:
    """Latency and throughput of the float model and every variant, interleaved; run alone on the machine."""
    from . import bench
    from .runtime import LiteModel

    source = source_of(job)
    n = min(job.n, TIMING_SAMPLES)
    x = job.eval_rows(0, n)
    lite, feeds = {}, {}
    for name in names:
        lite[name] = LiteModel(job.path(f"{name}.tflite"), num_threads=threads)
        feeds[name] = align(job.input_names, x, [t.name for t in lite[name].inputs])
    start = time.perf_counter()
    result = bench.measure(source, lite, feeds, x, batch=batch, reference=reference_row, time_budget=time_budget)
    return {"timing": result, "seconds": round(time.perf_counter() - start, 2)}


def chunk_rows(content: bytes) -> int:
    """Samples per predict call that keep one interpreter's tensors within MEMORY_BOUND."""
    from .runtime import tensor_bytes

    return int(max(1, min(32, MEMORY_BOUND // max(tensor_bytes(content), 1))))

