"""The study: convert a model with every technique, evaluate and time each variant, write the results."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import __version__, bench, data, evaluate, machine, models, report
from .conversion import convert
from .errors import ConversionError
from .files import staged_dir
from .progress import Silent
from .results import REFERENCE, Results, Variant
from .runtime import LiteModel
from .techniques import CONVERTER_TECHNIQUES, Technique, parse_list

KERAS_ROW = REFERENCE


def _inputs(x) -> list[np.ndarray]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _convert_all(model, techniques: list[Technique], calib, folder: Path, reporter) -> dict:
    """Each technique on its own: a refusal becomes a failed row and the others go on."""
    done = {}
    with reporter.task("Converting", len(techniques)) as advance:
        for t in techniques:
            try:
                conv = convert(model, t, calib)
            except ConversionError as exc:
                done[t.name] = Variant(t.name, t.engine, "failed", error=str(exc))
            else:
                path = folder / f"{t.name}.tflite"
                path.write_bytes(conv.content)
                done[t.name] = (path, conv.seconds)
            advance(note=t.name)
    return done


def run_study(model, x_eval, y_eval, calib, techniques, out, *, force: bool = False,
              model_info: dict | None = None, data_info: dict | None = None, settings: dict | None = None,
              threads: int = 1, batch: int = 32, reporter=None) -> Results:
    """Convert, evaluate and time `model` with each technique; write everything into `out`.

    Args:
        model: a Keras model (float).
        x_eval, y_eval: evaluation inputs (array or list of arrays) and labels (or None).
        calib: calibration inputs, kept apart from the evaluation inputs.
        techniques: names or Techniques; None means every converter technique.
        out: the study folder; refused if it exists and is not empty, unless `force`.
        threads, batch: LiteRT threads, and the batch size throughput is measured at.
    """
    reporter = reporter or Silent()
    techniques = parse_list(None, list(CONVERTER_TECHNIQUES)) if techniques is None else \
        [t if isinstance(t, Technique) else parse_list(t)[0] for t in techniques]
    x_eval = _inputs(x_eval)
    with staged_dir(out, force) as folder:
        keras_path = folder / "model.keras"
        model.save(keras_path)
        converted = _convert_all(model, techniques, calib, folder, reporter)

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
        metrics = evaluate.measure(outputs, KERAS_ROW, y_eval)
        timing = bench.measure(model, lite, x_eval, batch=batch, reporter=reporter, keras_name=KERAS_ROW)

        def row(name, engine, path, seconds, ins, outs):
            return Variant(technique=name, engine=engine, status="ok", path=path.name, bytes=path.stat().st_size,
                           input_dtype=ins, output_dtype=outs, convert_s=seconds, **metrics[name], **timing[name])

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
        with reporter.task("Writing report", 1) as advance:
            report.write(Results.load(folder / "results.json"), folder, force=True)  # from the JSON alone
            advance(note="report.html")
    return results


def demo(out="runs/demo", epochs: int = 10, seed: int = 0, calib_size: int = 200, force: bool = False,
         techniques=None, threads: int = 1, batch: int = 32, reporter=None) -> Results:
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
        batch=batch, reporter=reporter,
        model_info={"name": "reference_cnn", "source": "quantbench demo", "params": int(model.count_params())},
        data_info={"name": "sklearn digits", "train": len(split.x_train), "eval_samples": len(split.x_test),
                   "calibration": {"samples": calib_size, "from": "train split", "seed": seed},
                   "labels": True},
        settings={"epochs": epochs, "seed": seed, "calib_size": calib_size, "threads": threads, "batch": batch})
