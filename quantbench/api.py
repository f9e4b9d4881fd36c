"""One file in, one file out: a deployed `.tflite` run on a user's input file (no TensorFlow needed), one
variant of a model file (`quantbench convert`), a model fine-tuned on a data file (`quantbench qat`), and
`.tflite` files timed side by side (`quantbench bench`)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .core import machine
from .core.errors import InputError
from .core.files import check_new_file, write_file
from .core.progress import Silent
from .inputs.data import input_keys, load_array, open_numpy
from .measure import timing
from .measure.evaluate import is_classifier
from .record.bench_file import BenchResult
from .runtime.litert import LiteModel, generated_inputs

if TYPE_CHECKING:
    from .engines.qat import QatResult

SHOWN = 10  # samples listed on the terminal


@dataclass(frozen=True)
class Prediction:
    names: list
    outputs: list
    delegate_fallback: str | None = None  # XNNPACK's reason when the model ran on LiteRT's built-in kernels


def read_inputs(path: Path, model: LiteModel) -> list[np.ndarray]:
    if not path.is_file():
        raise InputError(f"No input file at {path} (--input). Expected a .npy or .npz file. Fix: check the path.")
    if path.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"{path} (--input) is not a .npy or .npz file. Expected inputs saved with np.save or "
                         "np.savez. Fix: save your inputs with np.save('x.npy', x).")
    loaded = open_numpy(path)
    if isinstance(loaded, np.ndarray):
        return [_numeric(loaded, str(path))]
    with loaded:
        keys = input_keys([t.name for t in model.inputs], "x")
        missing = [k for k in keys if k not in loaded.files]
        if missing:
            raise InputError(f"{path} has no array {missing[0]!r} (it has {sorted(loaded.files)}). Expected the "
                             f"inputs under {keys}. Fix: np.savez(f, {keys[0]}=...).")
        return [_numeric(load_array(loaded, k, str(path)), f"{path} array {k!r}") for k in keys]


def _numeric(a: np.ndarray, where: str) -> np.ndarray:
    """The array when it holds real numbers (bool, integers, floats); text, complex or objects are refused."""
    if a.dtype.kind not in "biuf":  # fuzz seeds 61206 and 7301: an .npz's x as <U3 or complex64 reached the runtime
        raise InputError(f"{where} has dtype {a.dtype}, which holds no real numbers. Expected a numeric array. "
                         "Fix: save it as x.astype('float32').")
    return a


def predict_file(model_path, input_path, output_path=None, force: bool = False) -> Prediction:
    """Dequantized outputs of a `.tflite` file on the inputs in `input_path`; saved when `output_path` is given."""
    if output_path is not None:
        check_new_file(output_path, force)  # before the work, not after
    model = LiteModel(model_path)
    arrays = read_inputs(Path(input_path), model)
    outs = model.predict(arrays if len(arrays) > 1 else arrays[0])
    outs = outs if isinstance(outs, list) else [outs]
    result = Prediction([t.name for t in model.outputs], outs, model.delegate_fallback)
    if output_path is not None:
        output_path = Path(output_path)
        buf = io.BytesIO()
        if output_path.suffix.lower() == ".npz":
            np.savez(buf, **dict(zip(result.names, outs)))
        elif len(outs) == 1 and output_path.suffix.lower() == ".npy":
            np.save(buf, outs[0])
        else:
            raise InputError(f"-o {output_path}: the model has {len(outs)} outputs. Expected a .npz path for several "
                             "outputs or .npy for one. Fix: use -o out.npz.")
        write_file(output_path, buf.getvalue(), force=force)
    return result


def render(result: Prediction, top: int = 3, saved=None) -> str:
    lines = []
    for name, out in zip(result.names, result.outputs):
        lines.append(f"{name}: shape {out.shape}, {out.dtype}")
        if is_classifier(out.shape):
            k = min(top, out.shape[1])
            for i, row in enumerate(out[:SHOWN]):
                best = np.argsort(-row)[:k]
                lines.append(f"  [{i}] " + "  ".join(f"class {c}: {row[c]:.4f}" for c in best))
            if len(out) > SHOWN:
                lines.append(f"  ... {len(out) - SHOWN} more samples")
        else:
            with np.printoptions(precision=4, suppress=True, threshold=50):
                lines.append("  " + str(out[:SHOWN]).replace("\n", "\n  "))
    if saved is not None:
        lines.append(f"Wrote {saved}")
    return "\n".join(lines)


# ---- `quantbench convert`: one variant of a model file --------------------------------------------

def convert_file(model, technique, output, calib_path=None, *, calib_size: int = 200, seed: int = 0,
                 x_key: str = "x", unsafe: bool = False, force: bool = False):
    """Make one variant of a model file and write it to `output` (temporary name, then rename)."""
    from .engines import base as engines
    from .engines.techniques import get
    from .inputs import data, models

    technique = get(technique)
    engine = engines.of(technique)
    if engine.fine_tunes:
        raise InputError(f"{technique.name} fine-tunes the model on training data before converting, which "
                         "`convert` does not do. Expected a technique that converts the model as it is. Fix: run "
                         "`quantbench qat MODEL --data train.npz -o OUT.tflite`.")
    check_new_file(output, force)
    if technique.calibrate and calib_path is None:
        raise InputError(f"Technique {technique.name!r} needs calibration data. Expected --calib FILE with a few "
                         "hundred representative inputs (.npz or .npy). Fix: pass --calib train.npz.")
    if calib_path is not None:
        data.check_path(calib_path, "--calib")  # before the model is loaded
    source = models.load_model(model, unsafe=unsafe)
    if source.lite is not None and not engine.reads_tflite:
        source.converter()  # raises the error that says what to pass instead
    calib = None
    if technique.calibrate:
        pool = data.load_data(calib_path, source, x_key, role="--calib", labels="ignore")
        calib = data.calibration_sample(pool, min(calib_size, len(pool)), seed)
    given = engines.Inputs(calib=calib)
    reason = engine.skip(source, technique, given)
    if reason:
        raise InputError(f"{technique.name} cannot be made from {model}: {reason}. Fix: pick another technique "
                         "(see `quantbench techniques`).")
    from .engines.verify import checked

    conv = checked(technique, engine.make(source, technique, given))  # never a float copy written as quantized
    write_file(output, conv.content, force=force)
    return conv


def qat_file(model_path, data_path, out, *, epochs: int = 3, val=None, batch_size: int = 32, seed: int = 0,
             learning_rate: float = 1e-4, unsafe: bool = False, force: bool = False, reporter=None) -> QatResult:
    """`qat` on a model file and a data file, the result written to `out` (temporary name, then rename)."""
    import dataclasses
    import warnings

    from .engines.qat import qat
    from .inputs import data, models

    check_new_file(out, force)  # fail before training, not after
    for path, role in ((data_path, "--data"), (val, "--val")):
        if path is not None:
            data.check_path(path, role)  # before the model is loaded (TensorFlow's import takes seconds)
    source = models.load_model(model_path, unsafe=unsafe)
    if source.keras is None:
        raise InputError(f"{model_path} is a {source.kind}; QAT fine-tunes a Keras model. Expected a .keras or "
                         ".h5 file. Fix: pass the Keras model the file was made from.")
    train = data.load_data(data_path, source, role="--data", labels="optional")
    unpack = lambda d: d.arrays() if len(d.x) > 1 else d.arrays()[0]  # noqa: E731
    validation = None
    y = data.training_labels(train.labels(), source)
    if val is not None:
        v = data.load_data(val, source, role="--val", labels="optional")
        val_y = data.training_labels(v.labels(), source)
        validation = (unpack(v), val_y) if val_y is not None and y is not None else unpack(v)
    keys = ("loss", "accuracy", "agreement", "val_accuracy")
    with warnings.catch_warnings(), (reporter or Silent()).task("Fine-tuning (QAT)", epochs) as advance:
        warnings.simplefilter("ignore")  # float layers are in the result, reported once by the caller
        result = qat(source.keras, unpack(train), y, epochs=epochs, batch_size=batch_size,
                     validation=validation, seed=seed, learning_rate=learning_rate,
                     on_epoch=lambda e, logs: advance(note=" ".join(f"{k} {logs[k]:.4f}" for k in keys if k in logs)))
    result = dataclasses.replace(result, learned_from=f"the labels in {data_path}" if y is not None else
                                 "the float model's own outputs (distillation: no labels that fit its one output)")
    result.save(out, force)
    return result


# ---- `quantbench bench`: any .tflite files, side by side -----------------------------------------

GENERATED = 32  # samples generated per input when no --input is given (fewer when they would not fit)
FLOAT_RANGE = (0.0, 1.0)  # float inputs of a file with no quantized twin: nothing says more about their range


def _load_models(paths: list, threads: int) -> list:
    seen = set()
    models = []
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise InputError(f"{p} is given twice. Expected each .tflite file once. Fix: drop the repeated path.")
        seen.add(key)
        if Path(p).is_dir():
            raise InputError(f"{p} is a folder. Expected .tflite files. Fix: pass the files, e.g. {p}/*.tflite.")
        models.append(LiteModel(p, num_threads=threads))
    return models


def _first_call(model, arrays) -> None:
    """Run one sample through the model: a file LiteRT loads but cannot run is refused before timing starts."""
    try:
        model.as_list(arrays)  # the whole input's shapes, so the message names its sample count
    except InputError as exc:
        raise InputError(f"{model.path}: {exc}") from None
    try:
        model.predict([a[:1] for a in arrays] if len(arrays) > 1 else arrays[0][:1])
    except (RuntimeError, ValueError) as exc:
        reason = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip()) or type(exc).__name__
        raise InputError(f"LiteRT could not run {model.path}: {reason} Expected a .tflite file LiteRT can run. "
                         "Fix: re-create it, or leave it out.") from None


def check_json_out(path, force: bool = False) -> None:
    """Refuse an existing --json file unless `force`, before any timing."""
    path = Path(path)
    if path.is_dir() or (path.exists() and not force):
        raise InputError(f"--json {path} already exists{' and is a folder' if path.is_dir() else ''}. Expected a "
                         "new file path. Fix: choose another --json path" + ("." if path.is_dir() else
                                                                              ", or pass --force to replace it."))


def bench_files(paths: list, input_path=None, *, threads: int = 1, batch: int = 32,
                time_budget: float = timing.TIME_BUDGET_S, rel_ci: float = timing.REL_CI,
                rounds: int = timing.MIN_ROUNDS, max_rounds: int = timing.MAX_ROUNDS,
                memory_bound: int = timing.THROUGHPUT_MEMORY, seed: int = 0, reporter=None) -> BenchResult:
    """Time `.tflite` files side by side, interleaved, as a study times its variants (see `timing.measure`).

    Each file gets `input_path`'s arrays (a .npy, or a .npz with x or x_<input name>) or, without it,
    inputs generated from its own signature (see runtime.litert.generated_inputs); files with different inputs
    are timed in the same rounds all the same. Every file is loaded and run once before timing starts.
    """
    if not paths:
        raise InputError("No .tflite files given. Expected one or more paths. Fix: quantbench bench a.tflite b.tflite.")
    models = _load_models(paths, threads)
    if input_path is not None:
        inputs = [read_inputs(Path(input_path), m) for m in models]
        origin = str(input_path)
    else:
        inputs = generated_inputs(models, GENERATED, seed, fallback=FLOAT_RANGE, bound=memory_bound)
        origin = f"generated from each file's signature (seed {seed})"
    for m, arrays in zip(models, inputs):
        _first_call(m, arrays)
    names = [str(p) for p in paths]

    def make_runners(size):
        return {name: (timing.lite_runner(m, arrays, size), timing.samples_per_call(m, size))
                for name, m, arrays in zip(names, models, inputs)}

    timed, used = timing.run_phases([("", len(models), make_runners)], [timing.sample_bytes(m) for m in models],
                                    batch, time_budget, reporter or Silent(), rounds=rounds, max_rounds=max_rounds,
                                    rel_ci=rel_ci, memory_bound=memory_bound, seed=seed)
    files = [{"path": name, "bytes": m.size_bytes, "inputs": [str(t) for t in m.inputs],
              "input_shapes": [list(a.shape[1:]) for a in arrays], **timed[name],
              "xnnpack_refused": m.delegate_fallback}  # read after the timing: see timing.measure
             for name, m, arrays in zip(names, models, inputs)]
    settings = {"threads": threads, "batch": batch, "batch_used": used, "time_budget_s": time_budget, "rel_ci": rel_ci,
                "min_rounds": rounds, "max_rounds": max_rounds, "memory_bound_bytes": memory_bound, "seed": seed,
                "input": origin}
    return BenchResult(files, machine.describe(threads), settings)
