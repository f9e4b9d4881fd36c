"""The study: convert a model with every technique, evaluate and time each variant, write the results."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import __version__, bench, data, evaluate, machine, models
from .conversion import convert
from .errors import ConversionError, TrainingError
from .files import staged_dir
from .progress import Silent
from .results import Results, Variant
from .runtime import LiteModel
from .techniques import CONVERTER_TECHNIQUES, Technique, get, parse_list

KERAS_ROW = "keras"


def _inputs(x) -> list[np.ndarray]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _make(model, t: Technique, calib, qat_args: dict):
    """Convert with one technique; qat-int8 fine-tunes first (on `train`, else distils on `calib`)."""
    if t.engine != "qat":
        return convert(model, t, calib)
    from .qat import qat

    x, y = qat_args["train"] or (calib, None)
    # a QatResult has .content and .seconds, like a Conversion
    return qat(model, x, y, epochs=qat_args["epochs"], calib=calib, seed=qat_args["seed"])


def _convert_all(model, techniques: list[Technique], calib, folder: Path, reporter, qat_args: dict) -> dict:
    """Each technique on its own: a refusal becomes a failed row and the others go on."""
    done = {}
    with reporter.task("Converting", len(techniques)) as advance:
        for t in techniques:
            if t.engine == "qat" and qat_args["epochs"] < 1:
                done[t.name] = Variant(t.name, t.engine, "skipped",
                                       error=f"{t.name} fine-tunes the model: pass --qat-epochs N (N ≥ 1)")
                advance(note=t.name)
                continue
            try:
                conv = _make(model, t, calib, qat_args)
            except (ConversionError, TrainingError) as exc:
                done[t.name] = Variant(t.name, t.engine, "failed", error=str(exc))
            else:
                path = folder / f"{t.name}.tflite"
                path.write_bytes(conv.content)
                done[t.name] = (path, conv.seconds)
            advance(note=t.name)
    return done


def run_study(model, x_eval, y_eval, calib, techniques, out, *, force: bool = False,
              model_info: dict | None = None, data_info: dict | None = None, settings: dict | None = None,
              threads: int = 1, reporter=None, qat_epochs: int = 0, train=None, seed: int = 0) -> Results:
    """Convert, evaluate and time `model` with each technique; write everything into `out`.

    Args:
        model: a Keras model (float).
        x_eval, y_eval: evaluation inputs (array or list of arrays) and labels (or None).
        calib: calibration inputs, kept apart from the evaluation inputs.
        techniques: names or Techniques; None means every converter technique.
        out: the study folder; refused if it exists and is not empty, unless `force`.
        qat_epochs: when > 0, adds the row qat-int8: fine-tuned on `train` = (x, y), else on `calib`
            against the float model's outputs.
    """
    reporter = reporter or Silent()
    techniques = parse_list(None, list(CONVERTER_TECHNIQUES)) if techniques is None else \
        [t if isinstance(t, Technique) else parse_list(t)[0] for t in techniques]
    if qat_epochs > 0 and not any(t.engine == "qat" for t in techniques):
        techniques = [*techniques, get("qat-int8")]
    x_eval = _inputs(x_eval)
    with staged_dir(out, force) as folder:
        keras_path = folder / "model.keras"
        model.save(keras_path)
        converted = _convert_all(model, techniques, calib, folder, reporter,
                                 {"epochs": qat_epochs, "train": train, "seed": seed})

        with reporter.task("Evaluating", len(techniques) + 1) as advance:
            reference = model.predict(x_eval if len(x_eval) > 1 else x_eval[0], batch_size=256, verbose=0)
            advance(note=KERAS_ROW)
            lite, outputs = {}, {KERAS_ROW: reference}
            for name, item in converted.items():
                if isinstance(item, tuple):
                    lite[name] = LiteModel(item[0], num_threads=threads)
                    outputs[name] = lite[name].predict(x_eval)
                advance(note=name)

        n = len(x_eval[0])
        runners = {KERAS_ROW: bench.keras_runner(model, x_eval)}
        runners.update({name: bench.lite_runner(m, x_eval) for name, m in lite.items()})
        with reporter.task("Timing (batch 1)", n) as advance:
            times = bench.latency(runners, n, on_round=advance)

        def row(name, engine, path, seconds, ins, outs):
            acc = evaluate.accuracy(outputs[name], y_eval) if y_eval is not None else None
            base = evaluate.accuracy(reference, y_eval) if y_eval is not None else None
            return Variant(
                technique=name, engine=engine, status="ok", path=path.name, bytes=path.stat().st_size,
                input_dtype=ins, output_dtype=outs, accuracy=acc,
                accuracy_delta_pp=None if acc is None else round((acc - base) * 100, 6),
                agreement=evaluate.agreement(outputs[name], reference),
                latency_ms=bench.summarize(times[name]), convert_s=seconds)

        variants = [row(KERAS_ROW, "keras", keras_path, None, "float32", "float32")]
        for t in techniques:
            item = converted[t.name]
            if isinstance(item, Variant):
                variants.append(item)
                continue
            m = lite[t.name]
            variants.append(row(t.name, t.engine, item[0], round(item[1], 4),
                                ",".join(i.dtype for i in m.inputs), ",".join(o.dtype for o in m.outputs)))
        results = Results(
            quantbench_version=__version__, model=model_info or {"name": model.name},
            data=data_info or {"eval_samples": n, "labels": y_eval is not None},
            machine=machine.describe(threads), settings=settings or {}, variants=variants)
        results.save(folder / "results.json")
    return results


def demo(out="runs/demo", epochs: int = 10, seed: int = 0, calib_size: int = 200, force: bool = False,
         techniques=None, threads: int = 1, reporter=None, qat_epochs: int = 0) -> Results:
    """The reference experiment: train the article's CNN on digits, then study every technique."""
    reporter = reporter or Silent()
    techniques = parse_list(techniques, list(CONVERTER_TECHNIQUES)) if not isinstance(techniques, list) \
        else techniques
    from .files import check_new_dir

    check_new_dir(out, force)  # fail before training, not after
    split = data.digits()
    calib = data.calibration_sample(split.x_train, calib_size, seed)
    models.seed_everything(seed)
    model = models.reference_cnn()
    with reporter.task("Training", epochs) as advance:
        models.train(model, split.x_train, split.y_train, epochs,
                     on_epoch=lambda e, logs: advance(note=f"loss {logs['loss']:.4f}"))
    return run_study(
        model, split.x_test, split.y_test, calib, techniques, out, force=force, threads=threads,
        reporter=reporter, qat_epochs=qat_epochs, train=(split.x_train, split.y_train), seed=seed,
        model_info={"name": "reference_cnn", "source": "quantbench demo", "params": int(model.count_params())},
        data_info={"name": "sklearn digits", "train": len(split.x_train), "eval_samples": len(split.x_test),
                   "calibration": {"samples": calib_size, "from": "train split", "seed": seed},
                   "labels": True},
        settings={"epochs": epochs, "seed": seed, "calib_size": calib_size, "threads": threads,
                  "qat_epochs": qat_epochs})
