"""The tasks of a study, each a function that runs in any process: this one, a worker, or a Ray node.

Everything a task needs travels in a `Job` (paths, not arrays): the model file, the staging folder, and the
work folder where the study keeps its data as `.npy` files that every process memory-maps. A task reads its
inputs a chunk at a time and returns small things (a stream of metrics, a file name, a dict), so memory
stays flat whatever the size of the evaluation set.

To a node that cannot see this machine's disk (Ray), each task says what it reads (`plan.ships`): the Job
goes with paths relative to the task's folder there (`Job.away`) and holding only the evaluation rows the task
reads; the files themselves travel by value (`shipping`), and what the task writes comes back the same way.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core import memory
from ..core.errors import ConversionError, LiteRTError, TrainingError
from ..engines import base as engines, verify
from ..engines.techniques import Technique
from ..executors import shipping
from ..executors.plan import Part, Placed, Shipment, ships
from ..measure import evaluate
from ..measure.outputs import TaskSpec, Truth
from ..runtime.litert import align

SIDE_SAMPLES = 256    # evaluation samples the side studies (selective search, calibration sizes) use at most
TIMING_SAMPLES = 64   # distinct samples the timing cycles through
LAYER_ERROR_SAMPLES = 32  # calibration samples the per-layer error study runs: on MobileNetV2, 32 give the same
                          # ten worst layers as 64 in 15 s instead of 24 s (BENCHMARKS.md)
MEMORY_BOUND = 256 * 2 ** 20  # bytes of tensors one chunk may hold in one interpreter
SHARD_BYTES = 64 * 2 ** 20  # bytes of inputs and float outputs one evaluation shard holds: what a shard sends to a
                            # Ray node (its object store holds one per CPU) and what the float model's outputs bring
                            # back (see `shard_rows`)
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
    shard: int = 512           # evaluation samples per shard: per reference task and per evaluation task
    held: range | tuple | None = None  # on a node (Ray): the evaluation rows its files hold, in order; None: all

    def path(self, name: str) -> Path:
        return Path(self.folder) / name

    def _arrays(self, stem: str) -> list[np.ndarray]:
        return [np.load(Path(self.work) / f"{stem}_{i}.npy", mmap_mode="r") for i in range(self.n_inputs)]

    def _references(self) -> list[np.ndarray]:
        return [np.load(Path(self.work) / f"reference_{k}.npy", mmap_mode="r") for k in range(len(self.output_names))]

    def _local(self, rows):
        """Where evaluation rows (a slice or indices of the whole set) are in this process's files: where they are,
        or, on a node, among the rows shipped with the task (one it was not sent is a bug, never a zero)."""
        if self.held is None:
            return rows
        held = np.asarray(self.held, dtype=np.int64)
        want = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        at = np.minimum(np.searchsorted(held, want), max(len(held) - 1, 0))
        if len(want) and (not len(held) or not np.array_equal(held[at], want)):
            raise IndexError(f"evaluation rows {want.min()} to {want.max()} were not shipped with this task")
        return at

    def eval_rows(self, start: int, stop: int) -> list[np.ndarray]:
        return [np.asarray(a[self._local(slice(start, stop))]) for a in self._arrays("eval")]

    def reference_rows(self, start: int, stop: int) -> list[np.ndarray]:
        return [np.asarray(r[self._local(slice(start, stop))]) for r in self._references()]

    def eval_at(self, rows) -> list[np.ndarray]:
        return [np.asarray(a[self._local(rows)]) for a in self._arrays("eval")]

    def reference_at(self, rows) -> list[np.ndarray]:
        return [np.asarray(r[self._local(rows)]) for r in self._references()]

    def labels_at(self, rows):
        return self.labels.rows(self._local(rows)) if self.labels else None

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
        return None if not self.labels else self.labels.rows(self._local(slice(start, stop)))


    def inputs(self) -> engines.Inputs:
        return engines.Inputs(calib=self.calib(), float_tflite=str(self.path("float32.tflite")),
                              qat={"epochs": self.qat["epochs"], "train": self.train(), "seed": self.qat["seed"]})

    # ---- to a node that cannot see this machine's disk (see `plan.ships`) --------------------------------

    def _away(self, path: str, elsewhere: str) -> str:
        """Where `path` is in a task's folder on a node: under the study's folder as here, else in `elsewhere`."""
        p, home = Path(path), Path(self.folder)
        return f"{shipping.HOME}/{p.relative_to(home).as_posix()}" if p.is_relative_to(home) \
            else f"{elsewhere}/{p.name}"

    def away(self, held=()) -> "Job":
        """This Job as a node receives it: paths relative to the task's folder there (`there` makes them whole),
        holding the evaluation rows `held` (a range or sorted indices) and their labels only."""
        labels = self.labels.rows(np.asarray(held, dtype=np.int64)) if self.labels else self.labels
        origin = Path(self.origin).name if os.path.exists(self.origin) else self.origin  # in messages: the name
        return replace(self, model=self._away(self.model, "model"), folder=shipping.HOME,
                       work=self._away(self.work, "work"), held=held, labels=labels, origin=origin)

    def there(self, root) -> "Job":
        """A Job from `away`, in the task's folder `root` on the node; the model is its file in the node's cache
        (what a link points to), so a worker loads it once, whichever task's folder it came through."""
        return replace(self, model=os.path.realpath(os.path.join(root, self.model)),
                       folder=os.path.join(root, self.folder), work=os.path.join(root, self.work))

    def parts(self, model: bool = False, data: tuple = (), files: tuple = (), rows=None,
              reference: bool = True) -> list[Part]:
        """What a task reads, named as `away` names it: the model (with its export, once made), data (`calib`,
        `pool`, `train`) the study has, the study's files that exist (variants), and the evaluation rows `rows`
        with the float model's outputs for them (`reference`)."""
        paths = [self.model, str(Path(self.work) / EXPORTED)] if model else []
        have = {"calib": self.has_calib, "pool": self.has_pool, "train": self.qat["train"]}
        for stem in (s for s in data if have[s]):
            paths += [str(Path(self.work) / f"{stem}_{i}.npy") for i in range(self.n_inputs)]
            paths += [str(Path(self.work) / "train_y.npy")] if stem == "train" else []
        paths += [str(self.path(name)) for name in files]
        found = [Part(p, self._away(p, "model")) for p in paths if os.path.exists(p)]
        if rows is not None:
            stems = [f"eval_{i}" for i in range(self.n_inputs)]
            stems += [f"reference_{k}" for k in range(len(self.output_names))] if reference else []
            found += [Part(str(Path(self.work) / f"{s}.npy"), self._away(str(Path(self.work) / f"{s}.npy"), "work"),
                           rows) for s in stems]
        return found


_SOURCES: dict = {}


def remember(job: Job, source) -> None:
    """Give this process the already-loaded model, so in-process tasks do not load it again."""
    if hasattr(source, "predict"):  # a models.Source, not a ModelInfo
        _SOURCES[(job.model, job.unsafe)] = source


def source_of(job: Job):
    """The float model, loaded once per process."""
    key = (job.model, job.unsafe)
    if key not in _SOURCES:
        from ..inputs.models import load_model

        _SOURCES[key] = load_model(job.model, unsafe=job.unsafe)
    source = _SOURCES[key]
    exported = Path(job.work) / EXPORTED
    source.exported = exported if exported.is_dir() else None  # this study's export, once the task made it
    return source


# ---- the tasks -------------------------------------------------------------------------------------

@ships(lambda path, unsafe: Shipment((Placed(f"model/{Path(path).name}"), unsafe),
                                     [Part(str(path), f"model/{Path(path).name}")]))
def describe_model(path: str, unsafe: bool):
    """Load a model file here (a worker), keep it for the tasks that follow, and describe it."""
    from ..inputs.models import load_model

    source = load_model(path, unsafe=unsafe)
    _SOURCES[(str(path), unsafe)] = source
    return source.info()


@ships(lambda job: Shipment((job.away(),), job.parts(model=True), job.folder))
def export(job: Job) -> bool:
    """The Keras model exported once for the converter (`Source.export_for_converter`); False: not exported."""
    return source_of(job).export_for_converter(Path(job.work) / EXPORTED)


def shard_rows(sample_bytes: int, chunk: int, most: int) -> int:
    """Evaluation samples per shard: at most `most` and within SHARD_BYTES of inputs and float outputs, in whole
    chunks: the float model then predicts the same batches (the same outputs, to the last bit) in any shards."""
    return max(chunk, min(most, SHARD_BYTES // max(int(sample_bytes), 1)) // chunk * chunk)


@ships(lambda job, start, stop: Shipment((job.away(range(start, stop)), start, stop),
                                         job.parts(model=True, rows=range(start, stop), reference=False),
                                         job.folder))
def reference(job: Job, start: int, stop: int) -> evaluate.Stream:
    """The float model's outputs on evaluation samples [start, stop), a chunk at a time: their metric stream, and
    the outputs themselves as `stream.outputs`, which the study writes where later tasks read them (`keep`)."""
    before = memory.rss()  # the float model's memory: the RSS its loading (here, unless already loaded in
    source = source_of(job)  # this process) and first predict add; TensorFlow's own allocations are not
    stream, kept, bad = evaluate.Stream(job.keep_all), None, {}  # enumerable as an interpreter's tensors are
    for a in range(start, stop, job.chunk):
        b = min(a + job.chunk, stop)
        outs = [np.asarray(o, np.float32) for o in source.predict(job.eval_rows(a, b))]
        if a == start:
            stream.memory = {"bytes": max(memory.rss() - before, 0), "batch": b - a, "how": "rss"}
            kept = [np.empty((stop - start, *o.shape[1:]), np.float32) for o in outs]
        for name, o in zip(job.output_names, outs):  # every figure is measured against these: NaN is refused
            bad[name] = bad.get(name, 0) + evaluate.non_finite(o)
        for k, o in zip(kept, outs):
            k[a - start:b - start] = o
        stream.update(outs, outs)
    whole = (start, stop) == (0, job.n)
    evaluate.check_counts(bad, stop - start, job.origin if whole else f"{job.origin} (samples {start} to {stop - 1})")
    stream.outputs = kept
    return stream


def keep(job: Job, start: int, stream: evaluate.Stream) -> None:
    """Write a reference shard's outputs (`stream.outputs`) into the work folder, where every later task reads
    them, and let go of them."""
    from numpy.lib.format import open_memmap

    for k, o in enumerate(stream.outputs):
        path = Path(job.work) / f"reference_{k}.npy"
        m = open_memmap(path, mode="r+") if path.exists() else open_memmap(path, mode="w+", dtype=np.float32,
                                                                            shape=(job.n, *o.shape[1:]))
        m[start:start + len(o)] = o
        m.flush()
        del m  # unmapped: the written pages leave this process's RSS
    stream.outputs = None


def _converting(job: Job, *rest) -> Shipment:
    return Shipment((job.away(), *rest), job.parts(model=True, data=("calib", "train"), files=("float32.tflite",)),
                    job.folder)


@ships(_converting)
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


@ships(_converting)
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


@ships(lambda job, name, start, stop: Shipment((job.away(range(start, stop)), name, start, stop),
                                               job.parts(files=(f"{name}.tflite",), rows=range(start, stop)),
                                               job.folder))
def evaluate_shard(job: Job, name: str, start: int, stop: int):
    """One variant's stream of metrics on samples [start, stop), one interpreter, a chunk at a time."""
    from ..runtime.litert import LiteModel

    if not job.path(f"{name}.tflite").is_file():
        return {"status": "not converted", "error": f"{name} was not converted"}  # its row says why
    try:
        model = LiteModel(job.path(f"{name}.tflite"))
    except LiteRTError as exc:  # LiteRT refusing a converted model is a row; quantbench's own bugs surface
        return _refused(name, exc)
    stream = evaluate.Stream(job.keep_all)
    # The first sample alone, to size the chunk by: kernels allocate their scratch (a convolution's im2col, 936
    # values a pixel for a (3, 39) kernel on 8 channels) at their first invoke, not at load, and a chunk sized
    # before it could hold gigabytes (bench/scale.py's audio2dw: 5 GB at the study's chunk of 32). It runs in an
    # interpreter of its own, let go before the evaluation's: the evaluated one is loaded, resized and run as
    # before, and a shard's chunks (so its sums) are the same as when the chunk is not lowered.
    try:
        probe = LiteModel(job.path(f"{name}.tflite"))
        probe.predict(align(job.input_names, job.eval_rows(start, start + 1), [t.name for t in probe.inputs]))
    except (LiteRTError, RuntimeError) as exc:  # RuntimeError: LiteRT's invoke refusing, e.g. in XNNPACK
        return _refused(name, exc)
    first = probe.memory_bytes(), 1
    del probe
    chunk = variant_chunk(model, first[0], job.chunk)
    for a in range(start, stop, chunk):
        b = min(a + chunk, stop)
        feed = align(job.input_names, job.eval_rows(a, b), [t.name for t in model.inputs])
        try:
            outs = model.predict(feed)
        except (LiteRTError, RuntimeError) as exc:
            return _refused(name, exc)
        if a == start:
            stream.memory = interpreter_memory(model, *first, b - a)
        outs = align([t.name for t in model.outputs], outs if isinstance(outs, list) else [outs], job.output_names)
        why = evaluate.non_finite_error(outs, job.output_names)  # NaN where the float model is finite (checked)
        if why:
            return {"status": "failed", "error": f"{name}: {why}"}
        stream.update(outs, job.reference_rows(a, b))
    return stream


def variant_chunk(model, at_first: int, chunk: int) -> int:
    """Samples per predict call for this variant: the study's chunk (fixed from the float model's inputs and
    outputs before any conversion), lowered until the interpreter's tensors measured after its first sample
    (every tensor but the file, scratch included: what a sample can cost at most) fit MEMORY_BOUND. A
    large-activation model's chunk is set by its activations, not by its I/O."""
    per_call = 1 if model.resizable else max(model.inputs[0].shape[0] if model.inputs else 1, 1)
    per_sample = max(at_first - model.size_bytes, 1) / per_call
    return int(max(1, min(chunk, MEMORY_BOUND // per_sample)))


def interpreter_memory(model, at_load: int, load_batch: int, batch: int) -> dict:
    """What an interpreter holds at batch `batch` (`LiteModel.memory_bytes`, just after its first predict at that
    batch), and the linear model of it that timing sizes its groups and batches by: fixed + per_sample × batch,
    from the figures at the file's own batch (`at_load`) and at `batch`. A model whose batch dimension is fixed
    runs any batch as invokes of that size: it needs no more at a larger one (per_sample 0). A model read only
    at one batch counts everything but its file as per sample (an over-estimate, which is the safe side)."""
    now = model.memory_bytes()
    if not model.resizable:
        return {"bytes": now, "fixed": now, "per_sample": 0, "batch": batch}
    load_batch = max(int(load_batch), 1)
    if batch != load_batch and now != at_load:
        per_sample = max((now - at_load) / (batch - load_batch), 0.0)
    else:
        per_sample = float(max(now - model.size_bytes, 0)) / max(batch, 1)
    fixed = max(now - per_sample * batch, 0.0)
    return {"bytes": int(now), "fixed": int(fixed), "per_sample": int(math.ceil(per_sample)), "batch": int(batch)}


@ships(lambda job, *rest: Shipment((job.away(), *rest), job.parts(model=True, data=("calib",)), job.folder))
def layer_errors(job: Job, top: int = 10) -> dict:
    """TF's QuantizationDebugger on the calibration samples: the layers int8 hurts most."""
    from ..engines import selective

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
    from ..runtime.litert import LiteModel

    model = LiteModel(content)
    outs = model.predict(align(job.input_names, x, [t.name for t in model.inputs]))
    outs = outs if isinstance(outs, list) else [outs]
    return align([t.name for t in model.outputs], outs, job.output_names)


MAX_FLOAT_LAYERS = 10  # the greedy search stops here: past it, int8 is not what is being shipped any more


def _on_side_rows(*data: str):
    """How a side study travels: the model, `data`, and the evaluation rows `_side_rows` reads."""
    def how(job: Job, *rest) -> Shipment:
        held = range(0, min(job.n, SIDE_SAMPLES))
        return Shipment((job.away(held), *rest), job.parts(model=True, data=data, rows=held), job.folder)
    return how


@ships(_on_side_rows("calib"))
def selective_search(job: Job, goal) -> dict:
    """int8 with the most sensitive layers kept float, the fewest that meet the budget, judged as the
    recommendation judges (same measurements, every output's gate) on up to SIDE_SAMPLES samples."""
    from ..engines import selective
    from . import recommend

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


@ships(_on_side_rows("pool"))
def calibration_size(job: Job, size: int, seed: int) -> dict:
    """int8-only accuracy (or agreement) with `size` calibration samples drawn from the pool: one conversion."""
    from ..engines.converter import convert as convert_with
    from ..inputs import data

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


@ships(lambda job, names, rows, budget=None: Shipment(
    (job.away(rows), names, rows, budget), job.parts(files=tuple(f"{n}.tflite" for n in names), rows=rows),
    job.folder))
def mcu_facts(job: Job, names: list[str], rows: tuple, budget=None) -> dict:
    """Every variant on the TFLite Micro interpreter (in a child process of its own), over evaluation rows `rows`
    (`mcu.sample_rows`: a seeded draw): runs?, exact arena, flash, agreement with LiteRT and the float model."""
    from ..measure import mcu

    rows = np.asarray(rows, dtype=np.int64)
    inputs, reference, labels = job.eval_at(rows), job.reference_at(rows), job.labels_at(rows)
    from ..runtime.litert import LiteModel

    facts = {}
    with mcu.Worker() as worker:
        for name in names:
            path = job.path(f"{name}.tflite")
            feed = align(job.input_names, inputs, [t.name for t in LiteModel(path).inputs])
            facts[name] = mcu.measure(path, feed, None, reference, labels, list(job.output_names),
                                      worker, budget, job.spec).to_dict()
    return facts


ANCHOR = "float32"  # the variant every timing group holds: each ratio to it is measured in the same rounds


@dataclass(frozen=True)
class TimingPlan:
    """Which interpreters the timing holds at once (each group timed on its own, the anchor in every one) and
    the throughput batch, sized from each variant's measured memory (`interpreter_memory`)."""

    groups: list
    batch: int
    free: int | None  # bytes the interpreters may hold at once (None: no budget)


def need(memory: dict, name: str, batch: int) -> int:
    """Bytes `name`'s interpreter holds at `batch`, from its measured linear model; the largest known for a
    variant never measured (the safe side)."""
    m = memory.get(name) or max(memory.values(), key=lambda v: v["fixed"] + v["per_sample"] * batch, default=None)
    return 0 if m is None else int(m["fixed"] + m["per_sample"] * batch)


def plan_timing(names: list[str], memory: dict, batch: int, free: int | None, anchor: str = ANCHOR) -> TimingPlan:
    """Groups of variants whose interpreters fit `free` bytes together at the throughput batch, each with the
    anchor (when it is among `names`), in the order given; the batch is lowered (not below 1) until the anchor
    and the largest other variant fit together. Without a budget: every variant in one group."""
    names = list(names)
    if free is None or not names:
        return TimingPlan([names] if names else [], batch, free)
    anchored = anchor in names
    others = [n for n in names if n != anchor]
    b = max(int(batch), 1)
    while b > 1 and (need(memory, anchor, b) if anchored else 0) + max(
            [need(memory, n, b) for n in others] or [0]) > free:
        b -= 1
    base = need(memory, anchor, b) if anchored else 0
    groups, current, used = [], [], base
    for n in others:
        cost = need(memory, n, b)
        if current and used + cost > free:
            groups.append(current)
            current, used = [], base
        current.append(n)
        used += cost
    if current or not groups:
        groups.append(current)
    return TimingPlan([[anchor, *g] if anchored else g for g in groups], b, free)


def timing(job: Job, names: list[str], reference_row: str, threads: int, batch: int,
           time_budget: float | None = None, needs: dict | None = None, budget: int | None = None,
           root: int | None = None) -> dict:
    """Latency and throughput of the float model and every variant, interleaved; run alone on the machine.

    With a memory `budget` (bytes for the whole study's process tree, whose main process is `root`), the
    variants are timed in groups that fit what the tree leaves of it now (`plan_timing`), from each variant's
    memory `needs` measured at evaluation (`interpreter_memory`); float32 is in every group."""
    from ..measure import timing as bench
    from ..runtime.litert import LiteModel

    source = source_of(job)
    n = min(job.n, TIMING_SAMPLES)
    x = job.eval_rows(0, n)
    free = None if budget is None else max(int(budget) - memory.tree_rss(root), 0)
    plan = plan_timing(names, needs or {}, batch, free)

    def load(name):
        model = LiteModel(job.path(f"{name}.tflite"), num_threads=threads)
        return model, align(job.input_names, x, [t.name for t in model.inputs])

    io_bytes = {name: bench.sample_bytes(LiteModel(job.path(f"{name}.tflite"), allocate=False)) for name in names}
    start = time.perf_counter()
    result = bench.measure_groups(source, load, plan.groups, x, batch=plan.batch, reference=reference_row,
                                  time_budget=time_budget, anchor=ANCHOR, io_bytes=io_bytes)
    return {"timing": result, "seconds": round(time.perf_counter() - start, 2), "groups": plan.groups,
            "batch": plan.batch, "free_bytes": free}


def chunk_rows(content: bytes) -> int:
    """Samples per predict call that keep one interpreter's tensors within MEMORY_BOUND."""
    from ..runtime.litert import tensor_bytes

    return int(max(1, min(32, MEMORY_BOUND // max(tensor_bytes(content), 1))))

