"""The study: convert a model with every technique, evaluate and time each variant, write the results."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import __version__, bench, data, evaluate, lq, machine, models, recommend, report
from .conversion import as_inputs, as_source, convert
from .errors import ConversionError, InputError, TrainingError, one_line
from .files import check_new_dir, staged_dir
from .progress import Silent
from .results import REFERENCE, Results, Variant
from .runtime import LiteModel
from .techniques import DEFAULT_TECHNIQUES, LQ, Technique, get, parse_list

def align(names: list[str], arrays: list[np.ndarray], wanted: list[str]) -> list[np.ndarray]:
    """Reorder arrays named `names` into the order `wanted` names them; positional when names differ."""
    if len(arrays) == 1 or sorted(names) != sorted(wanted):
        return list(arrays)
    by_name = dict(zip(names, arrays))
    return [by_name[n] for n in wanted]


def _make(source, technique: Technique, calib, float_cache: dict, qat_args: dict | None = None):
    """One variant by the technique's engine; the LiteRT Quantizer starts from the float32 `.tflite`, and
    qat-int8 fine-tunes first (on `train`, else distils on the calibration inputs)."""
    if technique.engine == "qat":
        from .qat import qat

        x, y = qat_args["train"] or (calib, None)
        return qat(source.keras, x, y, epochs=qat_args["epochs"], calib=calib, seed=qat_args["seed"])
    if technique.engine != LQ:
        return convert(source, technique, calib)
    if "bytes" not in float_cache:
        float_cache["bytes"] = source.lite_bytes() if source.lite is not None else \
            convert(source, "float32").content
    if calib is not None and technique.calibrate:
        calib = calib if len(calib) == 1 else dict(zip(source.input_names, calib))
    return lq.make(float_cache["bytes"], technique, calib if technique.calibrate else None)


def _skip_reason(source, t: Technique, qat_args: dict) -> str | None:
    if source.lite is not None and t.engine != LQ:
        return "needs the TensorFlow model (.keras, .h5 or SavedModel); only a .tflite was given"
    if t.engine == "qat" and qat_args["epochs"] < 1:
        return f"{t.name} fine-tunes the model: pass --qat-epochs N (N ≥ 1)"
    if t.engine == "qat" and source.keras is None:
        return f"{t.name} fine-tunes a Keras model; a {source.kind} cannot be trained"
    return None


def _convert_all(source, techniques: list[Technique], calib, folder: Path, reporter, qat_args: dict) -> dict:
    """Each technique on its own: a refusal becomes a failed row and the others go on."""
    done, float_cache = {}, {}
    with reporter.task("Converting", len(techniques)) as advance:
        for t in techniques:
            reason = _skip_reason(source, t, qat_args)
            if reason:
                done[t.name] = Variant(t.name, t.engine, "skipped", error=reason)
                advance(note=t.name)
                continue
            try:
                conv = _make(source, t, calib, float_cache, qat_args)
            except (ConversionError, TrainingError) as exc:
                done[t.name] = Variant(t.name, t.engine, "failed", error=str(exc))
            else:
                path = folder / f"{t.name}.tflite"
                path.write_bytes(conv.content)
                done[t.name] = (path, conv.seconds)
            advance(note=t.name)
    return done


def _load_and_run(path: Path, source, x: list[np.ndarray], threads: int):
    """The variant loaded and its outputs on `x`, in the source's output order."""
    m = LiteModel(path, num_threads=threads)
    feed = align(source.input_names, x, [t.name for t in m.inputs])
    outs = m.predict(feed)
    outs = outs if isinstance(outs, list) else [outs]
    return m, feed, align([t.name for t in m.outputs], outs, source.output_names)


MAX_FLOAT_LAYERS = 10  # the greedy search stops here: past it, int8 is not what is being shipped any more


def _selective(source, calib, x, y, reference, goal, folder: Path, reporter):
    """int8 with the most sensitive layers kept float, the fewest that meet the budget; None if none can."""
    from . import selective

    ref_acc = evaluate.accuracy(reference[0], y) if y is not None else None

    def budget_ok(outputs):
        outs = outputs if isinstance(outputs, list) else [outputs]
        row = {"accuracy": None if ref_acc is None else evaluate.accuracy(outs[0], y),
               "agreement": evaluate.agreement(outs[0], reference[0])}
        drop = recommend.drop_pp(row, {"accuracy": ref_acc})[0]
        return drop <= goal.max_drop_pp, -drop

    def run(content):
        return _load_and_run(content, source, x, 1)[2]

    with reporter.task("Selective int8", 1) as advance:
        try:
            found = selective.selective(source, calib, run, budget_ok, max_float_layers=MAX_FLOAT_LAYERS,
                                        on_step=lambda step: advance(0, note=(
                f"{len(step.float_layers)} float layer(s)")))
        except ConversionError as exc:
            return None, {"error": str(exc)}
        advance()
    study = {"met": found.met, "float_layers": list(found.float_layers), "conversions": found.conversions,
             "seconds": round(found.seconds, 2),
             "steps": [{"float_layers": list(st.float_layers), "bytes": st.bytes, "drop_pp": round(-st.score, 4),
                        "ok": st.ok} for st in found.steps]}
    if not found.met:
        return None, study
    path = folder / "int8-selective.tflite"
    path.write_bytes(found.content)
    return (path, found.seconds), study


def _calibration_sizes(source, pool, sizes, x, y, reference, seed, reporter) -> dict:
    """int8-only accuracy (or agreement) against the number of calibration samples."""
    rows = []
    with reporter.task("Calibration sizes", len(sizes)) as advance:
        for size in sizes:
            calib = data.calibration_sample(pool, size, seed)
            try:
                content = convert(source, "int8-only", calib).content
            except ConversionError as exc:
                rows.append({"samples": size, "error": str(exc)})
            else:
                outs = _load_and_run(content, source, x, 1)[2]
                m = evaluate.measure({"ref": reference, "v": outs}, "ref", y)["v"]
                rows.append({"samples": size, "accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci"],
                             "agreement": m["agreement"], "bytes": len(content)})
            advance(note=f"{size} samples")
    return {"technique": "int8-only", "rows": rows}


def run_study(model, evaluation, calib, techniques=None, out="runs/study", *, force: bool = False,
              data_info: dict | None = None, settings: dict | None = None, threads: int = 1,
              batch: int = 32, save_keras: bool = False, artifacts: dict[str, bytes] | None = None,
              qat_epochs: int = 0, train=None, seed: int = 0, goal=None, calib_sizes=None, calib_pool=None,
              reporter=None) -> Results:
    """Convert, evaluate and time `model` with each technique; write everything into `out`.

    Args:
        model: a Keras model or a `quantbench.models.Source` (float).
        evaluation: a `data.Dataset` (or an input array) to evaluate on; labels optional.
        calib: calibration inputs (array, list of arrays or Dataset), kept apart from `evaluation`.
        techniques: names or Techniques; None means the default set (both engines).
        out: the study folder; refused if it exists and is not empty, unless `force`.
        threads, batch: LiteRT threads, and the batch size throughput is measured at.
        save_keras: write the Keras model into the folder as `model.keras` (the demo does).
        artifacts: more files to write into the folder, by name.
        qat_epochs: when > 0, adds the row qat-int8: fine-tuned on `train` = (x, y), else on `calib`
            against the float model's outputs.
        goal: a `recommend.Goal` (budget, target, optimize); default Goal(). Techniques that cannot serve
            the target are skipped before converting; `recommended.tflite` is the choice.
        calib_sizes: sample counts for a study of int8-only accuracy against calibration size, drawn from
            `calib_pool` (default: `calib`).
    """
    reporter = reporter or Silent()
    source = as_source(model)
    if not isinstance(evaluation, data.Dataset):
        evaluation = data.Dataset([evaluation] if not isinstance(evaluation, list) else evaluation, None, "array")
    techniques = [t if isinstance(t, Technique) else parse_list(t)[0]
                  for t in (techniques if techniques is not None else DEFAULT_TECHNIQUES)]
    # A float .tflite given as the model is itself the float32 row, the reference of the others.
    reference_row = "float32" if source.lite is not None else REFERENCE
    techniques = [t for t in techniques if t.name != reference_row]
    if qat_epochs > 0 and not any(t.engine == "qat" for t in techniques):
        techniques = [*techniques, get("qat-int8")]
    if any(t.engine == "selective" for t in techniques):
        raise InputError("int8-selective cannot be asked for: the recommendation makes it when no integer variant "
                         "meets --max-accuracy-drop. Fix: drop it from --techniques; set the budget instead.")
    goal = goal or recommend.Goal()
    order = [t.name for t in techniques]
    techniques, skipped = recommend.plan(techniques, goal.target)
    x, y = evaluation.x, evaluation.y
    calib = None if calib is None else as_inputs(calib)
    pool = calib if calib_pool is None else as_inputs(calib_pool)
    if calib_sizes and pool is None:
        raise InputError("--calib-sizes needs calibration samples to draw from, and none were given. "
                         "Fix: pass --calib FILE, or drop --calib-sizes.")
    for size in calib_sizes or []:
        if not 1 <= size <= len(pool[0]):
            raise InputError(f"--calib-sizes asks for {size} samples; the calibration pool has {len(pool[0])}. "
                             f"Expected sizes from 1 to {len(pool[0])}. Fix: pass smaller sizes, or more data.")
    with staged_dir(out, force) as folder:
        if save_keras:
            source.keras.save(folder / "model.keras")
            ref_path, ref_bytes = "model.keras", (folder / "model.keras").stat().st_size
        else:
            ref_path, ref_bytes = str(source.path) if source.path else None, \
                source.size_bytes if source.path else None
        for name, content in (artifacts or {}).items():
            (folder / name).write_bytes(content)
        converted = _convert_all(source, techniques, calib, folder, reporter,
                                 {"epochs": qat_epochs, "train": train, "seed": seed})

        rows: dict[str, Variant] = {}
        lite, feeds, outputs = {}, {}, {}
        with reporter.task("Evaluating", len(techniques) + 1) as advance:
            reference = source.predict(x)
            evaluate.check_reference(reference, source.output_names, evaluation.origin)  # issue 10: NaN weights
            advance(note=reference_row)
            for name, item in converted.items():
                if isinstance(item, Variant):
                    rows[name] = item
                else:
                    try:
                        lite[name], feeds[name], outputs[name] = _load_and_run(item[0], source, x, threads)
                    except Exception as exc:  # LiteRT refusing a converted model is a row, not a crash
                        reason = getattr(exc, "reason", None) or one_line(exc)
                        engine = next(t.engine for t in techniques if t.name == name)
                        rows[name] = Variant(name, engine, "failed", error=f"{name}: LiteRT cannot run it: {reason}")
                    else:  # issue 10: NaN where the float model is finite (huge inputs, say) is a failed row too
                        why = evaluate.non_finite_error(outputs[name], source.output_names)
                        if why:
                            del lite[name], feeds[name], outputs[name]
                            engine = next(t.engine for t in techniques if t.name == name)
                            rows[name] = Variant(name, engine, "failed", error=f"{name}: {why}")
                advance(note=name)

        n = len(evaluation)
        outputs[reference_row] = reference
        metrics = evaluate.measure(outputs, reference_row, y, source.output_names)
        studies = {}
        if source.lite is None and calib is not None and any(
                t.name in ("int8-fallback", "int8-only", "uint8-only") and t.name in lite for t in techniques):
            from . import selective

            studies["layer_errors"] = {"techniques": ["int8-fallback", "int8-only", "uint8-only"], "rows": []}
            with reporter.task("Per-layer int8 error", 1) as advance:
                try:
                    rows_ = selective.layer_errors(source, calib, top=10)
                except ConversionError as exc:  # the study goes on; the report says why the table is missing
                    studies["layer_errors"]["error"] = str(exc)
                else:  # a zero-scale tensor has no finite error: JSON holds null for it, not NaN
                    studies["layer_errors"]["rows"] = [
                        {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in r.items()}
                        for r in rows_]
                advance()
        if source.lite is None and calib is not None and recommend.needs_rescue(metrics, reference_row, goal):
            found, studies["selective"] = _selective(source, calib, x, y, reference, goal, folder, reporter)
            if found:
                techniques.append(get("int8-selective"))
                converted["int8-selective"] = found
                lite["int8-selective"], feeds["int8-selective"], outputs["int8-selective"] = \
                    _load_and_run(found[0], source, x, threads)
                metrics = evaluate.measure(outputs, reference_row, y, source.output_names)
        if calib_sizes and source.lite is None:
            studies["calibration_sizes"] = _calibration_sizes(source, pool, calib_sizes, x, y, reference, seed,
                                                              reporter)
        timing = bench.measure(source, lite, feeds, x, batch=batch, reporter=reporter, reference=reference_row)

        def measured(name, engine, path, size, seconds, ins, outs):
            return Variant(technique=name, engine=engine, status="ok", path=path, bytes=size, input_dtype=ins,
                           output_dtype=outs, convert_s=seconds, **metrics[name], **timing[name])

        variants = [measured(reference_row, "input" if source.lite is not None else source.kind, ref_path,
                             ref_bytes, None, ",".join(source.input_dtypes),
                             ",".join(str(r.dtype) for r in reference))]
        for t in sorted(techniques, key=lambda t: order.index(t.name) if t.name in order else len(order)):
            if t.name in rows:
                variants.append(rows[t.name])
                continue
            m, (path, seconds) = lite[t.name], converted[t.name]
            variants.append(measured(t.name, t.engine, path.name, path.stat().st_size, round(seconds, 4),
                                     ",".join(i.dtype for i in m.inputs), ",".join(o.dtype for o in m.outputs)))
        variants += [Variant(name, get(name).engine, "skipped", error=why) for name, why in skipped.items()]
        results = Results(
            quantbench_version=__version__, model=source.describe(),
            data={"eval_samples": n, "labels": y is not None, "eval_from": evaluation.origin, **(data_info or {})},
            machine=machine.describe(threads), settings={**(settings or {}), **goal.__dict__},
            variants=variants, studies=studies)
        results = _recommend(results, goal, folder)
        results.save(folder / "results.json")
        with reporter.task("Writing report", 1) as advance:
            report.write(Results.load(folder / "results.json"), folder, force=True)  # from the JSON alone
            advance(note="report.html")
    return results


def _recommend(results: Results, goal, folder: Path) -> Results:
    """The choice, its reasons and the decision tree in the results; the chosen file as recommended.tflite."""
    import dataclasses
    import shutil

    from .inspection import inspect

    float_ops = {v.technique: inspect(folder / v.path).float_compute_ops for v in results.variants
                 if v.ok and v.path and v.path.endswith(".tflite") and (folder / v.path).is_file()}
    rec = recommend.choose(results, goal.max_drop_pp, goal.target, goal.optimize, float_ops)
    if rec.technique is not None:
        shutil.copyfile(folder / results.variant(rec.technique).path, folder / "recommended.tflite")
    return dataclasses.replace(results, recommendation={**rec.to_dict(), "decision_tree": recommend.tree_rows()})


def compare(model, data_path, calib_path=None, techniques=None, out=None, *, calib_size: int | None = None,
            seed: int = 0, x_key: str = "x", y_key: str = "y", unsafe: bool = False, force: bool = False,
            threads: int = 1, batch: int = 32, qat_epochs: int = 0, goal=None, calib_sizes=None,
            reporter=None) -> Results:
    """Study a user's model file on a user's data file: every technique, one table.

    Without `calib_path`, calibration samples come from `data_path` by a seeded split, and the rest
    is evaluated; with it, all of `data_path` is evaluated.
    """
    techniques = parse_list(techniques, list(DEFAULT_TECHNIQUES)) if not isinstance(techniques, list) \
        else techniques
    source = model if isinstance(model, models.Source) else models.load_model(model, unsafe=unsafe)
    out = Path(out) if out is not None else Path("runs") / Path(str(source.path or source.name)).stem
    check_new_dir(out, force)
    dataset = data.load_data(data_path, source, x_key, y_key, role="--data")
    if calib_path is not None:
        pool = data.load_data(calib_path, source, x_key, y_key, role="--calib")
        size = len(pool) if calib_size is None else calib_size
        if size > len(pool):
            raise InputError(f"--calib-size {size} is larger than the {len(pool)} samples in {calib_path}. "
                             f"Expected at most {len(pool)}. Fix: pass --calib-size {len(pool)} or fewer.")
        calib = data.calibration_sample(pool.x, min(size, len(pool)), seed)
        info = {"calibration": {"samples": int(len(calib[0])), "from": str(calib_path), "seed": seed}}
        evaluation, train = dataset, pool
    else:
        train, evaluation, info = data.split_for_calibration(dataset, calib_size, seed)
        calib = train.x
    # QAT learns from the calibration samples, never the evaluation ones: on their labels, else by distillation.
    return run_study(source, evaluation, calib, techniques, out, force=force, threads=threads, batch=batch,
                     reporter=reporter, qat_epochs=qat_epochs, seed=seed, goal=goal, calib_sizes=calib_sizes,
                     calib_pool=train.x,
                     train=(train.x if len(train.x) > 1 else train.x[0], train.y) if train.y is not None else None,
                     data_info={"name": Path(str(data_path)).name, **info},
                     settings={"seed": seed, "calib_size": calib_size, "threads": threads, "batch": batch,
                               "qat_epochs": qat_epochs})


def demo(out="runs/demo", epochs: int = 10, seed: int = 0, calib_size: int = 200, force: bool = False,
         techniques=None, threads: int = 1, batch: int = 32, qat_epochs: int = 0, goal=None, calib_sizes=None,
         reporter=None) -> Results:
    """The reference experiment: train the article's CNN on digits, then study every technique."""
    reporter = reporter or Silent()
    techniques = parse_list(techniques, list(DEFAULT_TECHNIQUES)) if not isinstance(techniques, list) \
        else techniques
    check_new_dir(out, force)  # fail before training, not after
    split = data.digits()
    calib = data.calibration_sample(split.x_train, calib_size, seed)
    models.seed_everything(seed)
    model = models.reference_cnn()
    with reporter.task("Training", epochs) as advance:
        models.train(model, split.x_train, split.y_train, epochs,
                     on_epoch=lambda e, logs: advance(note=f"loss {logs['loss']:.4f}"))
    return run_study(
        model, data.Dataset([split.x_test], split.y_test, "sklearn digits test split"), calib, techniques, out,
        force=force, threads=threads, batch=batch, reporter=reporter, save_keras=True,
        qat_epochs=qat_epochs, train=(split.x_train, split.y_train), seed=seed, goal=goal,
        calib_sizes=calib_sizes, calib_pool=split.x_train,
        # the data beside the model, so `quantbench compare` can be tried on it
        artifacts={"digits-train.npz": data.npz_bytes(x=split.x_train, y=split.y_train),
                   "digits-test.npz": data.npz_bytes(x=split.x_test, y=split.y_test)},
        data_info={"name": "sklearn digits", "train": len(split.x_train),
                   "calibration": {"samples": calib_size, "from": "train split", "seed": seed}},
        settings={"epochs": epochs, "seed": seed, "calib_size": calib_size, "threads": threads, "batch": batch,
                  "qat_epochs": qat_epochs})


def convert_file(model, technique, output, calib_path=None, *, calib_size: int = 200, seed: int = 0,
                 x_key: str = "x", unsafe: bool = False, force: bool = False):
    """Make one variant of a model file and write it to `output` (temporary name, then rename)."""
    from .files import check_new_file, write_file
    from .techniques import get

    technique = get(technique)
    check_new_file(output, force)
    source = models.load_model(model, unsafe=unsafe)
    if source.lite is not None and technique.engine != LQ:
        source.converter()  # raises the error that says what to pass instead
    calib = None
    if technique.calibrate:
        if calib_path is None:
            raise InputError(f"Technique {technique.name!r} needs calibration data. Expected --calib FILE with a few "
                             "hundred representative inputs (.npz or .npy). Fix: pass --calib train.npz.")
        pool = data.load_data(calib_path, source, x_key, role="--calib")
        calib = data.calibration_sample(pool.x, min(calib_size, len(pool)), seed)
    conv = _make(source, technique, calib, {})
    write_file(output, conv.content, force=force)
    return conv
