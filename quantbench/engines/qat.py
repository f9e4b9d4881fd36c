"""Quantization-aware training: fine-tune with int8 simulated as the converter does it, export integer-only int8.

Keras 3 models go through quantbench's own simulation (`quantbench.engines.fakequant`); legacy tf_keras models
through tensorflow-model-optimization (tfmot), which accepts only those. Both export with the
`qat-int8` technique's converter settings: int8 input and output, no float op left.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..core.errors import ConversionError, InputError, TrainingError, one_line, reraise_interrupt
from ..core.quiet import silenced
from ..runtime.litert import LiteModel
from ..runtime.tf import import_tensorflow
from .converter import as_inputs

FLOAT_DTYPES = ("float16", "float32", "float64", "bfloat16")


@dataclass(frozen=True)
class QatResult:
    """The fine-tuned integer-only int8 model and how it was made."""

    content: bytes                              # the .tflite file: int8 input and output, integer ops only
    float_layers: tuple[tuple[str, str], ...]   # (layer name, reason) of layers trained without int8 simulation
    history: tuple[dict, ...]                   # one dict of metrics per epoch (loss, accuracy, val_...)
    seconds: float                              # fine-tuning and export, wall time
    engine: str                                 # "quantbench" (Keras 3) or "tfmot" (tf_keras)
    learned_from: str = ""                      # what the loss compared with: labels, or the float model's outputs

    def save(self, path, force: bool = False):
        """Write the .tflite file (temporary name, then rename; refuses to overwrite unless `force`)."""
        from ..core.files import write_file

        return write_file(path, self.content, force)


def float_ops(content: bytes) -> list[str]:
    """Ops of a .tflite model that read or write a float tensor: empty for an integer-only model."""
    # Without delegates, so the list is the model's own ops rather than XNNPACK partitions
    found = []
    for op in LiteModel(content, delegates=False, allocate=False).op_details():
        types = {np.dtype(t).name for t in (*op["operand_types"], *op["result_types"])}
        if types & set(FLOAT_DTYPES):
            found.append(f"{op['op_name']} ({', '.join(sorted(types))})")
    return found


def _check(model, x, y, epochs, batch_size, learning_rate):
    """Validate every argument before anything trains; return x as a list of float32 arrays."""
    if epochs < 1 or batch_size < 1:
        raise InputError(f"epochs={epochs}, batch_size={batch_size}. Expected both ≥ 1. "
                         "Fix: pass epochs=3 (a few epochs suffice to fine-tune) and batch_size=32.")
    if not _is_tf_keras(model) and not hasattr(getattr(model, "_functional", None) or model, "_nodes_by_depth"):
        raise InputError(
            f"QAT got a subclassed model ({type(model).__name__}); its layers' wiring cannot be read. "
            "Expected a functional or Sequential Keras model. Fix: rebuild it with keras.Input and "
            "the functional API.")
    if not learning_rate > 0:
        raise InputError(f"learning_rate={learning_rate}. Expected a positive number. Fix: pass 1e-4.")
    if len(model.outputs) != 1:
        raise InputError(f"QAT got a model with {len(model.outputs)} outputs. Expected one output. "
                         "Fix: fine-tune a single-output model (wrap the head you ship).")
    arrays = as_inputs(x)
    if len(arrays) != len(model.inputs):
        raise InputError(f"QAT got {len(arrays)} input array(s) for a model with {len(model.inputs)} inputs. "
                         "Fix: pass a list with one array per model input.")
    for a, t in zip(arrays, model.inputs):
        want = tuple(t.shape[1:])
        if a.ndim != len(t.shape) or any(w is not None and w != g for w, g in zip(want, a.shape[1:])):
            raise InputError(f"QAT input has shape {a.shape}, expected (N, {', '.join(map(str, want))}). "
                             "Fix: reshape the training inputs to the model's input shape.")
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise InputError(f"QAT inputs of shape {a.shape} contain NaN, inf or non-numbers. "
                             "Expected finite numbers. Fix: clean or drop those samples.")
    n = len(arrays[0])
    if y is not None and len(y) != n:
        raise InputError(f"QAT got {n} inputs and {len(y)} labels. Expected one label per input. "
                         "Fix: pass aligned x and y.")
    return [a.astype(np.float32) for a in arrays]


def _looks_like_probabilities(out: np.ndarray) -> bool:
    out = out.reshape(len(out), -1)
    return out.shape[1] > 1 and out.min() >= 0 and out.max() <= 1 and np.allclose(out.sum(1), 1, atol=1e-3)


def _objective(kmod, reference: np.ndarray, y):
    """Loss, metrics and targets: labels when given, else the float model's own outputs (distillation)."""
    probs = _looks_like_probabilities(reference)
    losses, metrics = kmod.losses, kmod.metrics
    if y is None:
        if probs:  # cross-entropy to the float model's softmax: KL divergence up to a constant
            return losses.CategoricalCrossentropy(), [metrics.CategoricalAccuracy(name="agreement")], reference
        return losses.MeanSquaredError(), [], reference
    y = np.asarray(y)
    width = reference.reshape(len(reference), -1).shape[1]
    if y.ndim == 1 and width > 1 and np.issubdtype(y.dtype, np.number) and np.all(y == np.round(y)):
        if y.min() < 0 or y.max() >= width:
            raise InputError(f"Labels range {y.min():g}..{y.max():g} but the model has {width} outputs. "
                             f"Expected class indices 0..{width - 1}. Fix: pass labels matching the outputs.")
        return (losses.SparseCategoricalCrossentropy(from_logits=not probs),
                [metrics.SparseCategoricalAccuracy(name="accuracy")], y.astype(np.int64))
    if y.shape == reference.shape and width > 1 and y.min() >= 0 and np.allclose(y.sum(axis=-1), 1):
        return (losses.CategoricalCrossentropy(from_logits=not probs),
                [metrics.CategoricalAccuracy(name="accuracy")], y.astype(np.float32))
    if y.ndim == 1 and reference.shape[1:] == (1,):
        y = y[:, None]
    if y.shape[1:] == reference.shape[1:]:
        return losses.MeanSquaredError(), [], y.astype(np.float32)
    raise InputError(f"Labels have shape {y.shape}; the model's output has shape {reference.shape}. "
                     "Expected class indices (N,), one-hot (N, classes) or targets shaped like the output. "
                     "Fix: pass labels in one of those forms, or y=None to distil from the float model.")


def _fit(kmod, qmodel, x, targets, loss, metrics, *, epochs, batch_size, learning_rate, validation,
         on_epoch) -> list[dict]:
    """Fine-tune; stop at the first non-finite loss with a TrainingError."""
    history, bad = [], {}

    class Watch(kmod.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if logs and not math.isfinite(float(logs.get("loss", 0.0))):
                bad.update(epoch=self.epoch + 1, batch=batch + 1)
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if bad:
                return
            logs = {k: float(v) for k, v in (logs or {}).items()}
            history.append(logs)
            if on_epoch:
                on_epoch(epoch, logs)

    qmodel.compile(optimizer=kmod.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    qmodel.fit(x if len(x) > 1 else x[0], targets, batch_size=batch_size, epochs=epochs, verbose=0,
               shuffle=True, validation_data=validation, callbacks=[Watch()])
    if bad:
        raise TrainingError(
            f"QAT loss became NaN or infinite in epoch {bad['epoch']} (batch {bad['batch']}): training "
            f"diverged at learning_rate={learning_rate:g}, and nothing was exported. Expected a finite loss. "
            f"Fix: lower the learning rate tenfold (learning_rate={learning_rate / 10:g}; --learning-rate "
            "on the command line), or check that the inputs and targets are of a sane scale.")
    return history


def _validation(model, validation, y_given: bool):
    """(x_val, targets) for Keras, the targets computed like the training ones."""
    if validation is None:
        return None
    xv, yv = validation if isinstance(validation, tuple) and len(validation) == 2 else (validation, None)
    xv = [a.astype(np.float32) for a in as_inputs(xv)]
    if yv is None and y_given:
        raise InputError("validation has inputs but no labels while training uses labels. "
                         "Expected (x_val, y_val). Fix: pass validation=(x_val, y_val).")
    if yv is None:
        yv = model.predict(xv if len(xv) > 1 else xv[0], batch_size=256, verbose=0)
    return (xv if len(xv) > 1 else xv[0], np.asarray(yv))


def _convert(qmodel) -> bytes:
    """Export with the qat-int8 technique's settings; refuse a result that still computes in float."""
    from .converter import apply, as_source
    from .techniques import get

    converter = as_source(qmodel).converter()
    apply(converter, get("qat-int8"))
    try:
        with silenced():
            content = bytes(converter.convert())
    except Exception as exc:  # the converter raises many types; the caller gets its reason in one line
        reraise_interrupt()
        raise ConversionError(f"qat-int8: {one_line(exc)}") from exc
    left = float_ops(content)
    if left:
        raise ConversionError(
            f"qat-int8: the converted model still computes in float ({'; '.join(left[:5])}). "
            "Expected integer-only int8. Fix: replace the layers named in float_layers, or use int8-fallback.")
    return content


def _is_tf_keras(model) -> bool:
    return type(model).__module__.split(".")[0] == "tf_keras"


def _import_tfmot():
    """tfmot and tf_keras, imported without switching this process's `tf.keras` away from Keras 3."""
    tf = import_tensorflow()
    getattr(tf.keras, "version", None)  # resolve the lazy tf.keras now, while it still means Keras 3
    saved = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        with silenced():
            import tensorflow_model_optimization as tfmot
            import tf_keras
    finally:  # tfmot sets TF_USE_LEGACY_KERAS=1 on import; keep it from leaking to subprocesses
        if saved is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = saved
    return tfmot, tf_keras


def _prepare_keras(model, calib):
    """The QAT copy of a Keras 3 model, ranges set from `calib`, and the layers it leaves in float."""
    from . import fakequant

    qmodel, float_layers = fakequant.rewrite(model)
    fakequant.observe(qmodel, calib)
    return qmodel, float_layers


def _prepare_tfmot(model):
    tfmot, tf_keras = _import_tfmot()
    try:
        with silenced():
            qmodel = tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError) as exc:
        raise InputError(
            f"tfmot cannot quantize this tf_keras model: {one_line(exc)}. Expected a Sequential or "
            "functional tf_keras model of layers tfmot supports. Fix: rebuild the model in Keras 3 "
            "(quantbench's own simulation names the layers it leaves in float).") from None
    return qmodel, tf_keras


def qat(model, x, y=None, *, epochs: int = 3, batch_size: int = 32, validation=None, calib=None,
        seed: int = 0, on_epoch=None, learning_rate: float = 1e-4) -> QatResult:
    """Fine-tune `model` with int8 simulated in training, and export it as integer-only int8.

    Args:
        model: a trained Keras 3 model (functional or Sequential) or a legacy tf_keras model.
        x: training inputs, float (an array, or a list with one array per model input).
        y: labels (class indices or one-hot) or targets; None trains against the float model's outputs.
        validation: (x_val, y_val) evaluated after each epoch (x_val alone when y is None).
        calib: inputs that set the starting activation ranges as calibration would
            (default: up to 200 training inputs); tfmot models start from tfmot's own ranges.
        on_epoch: called as on_epoch(epoch, logs) after each epoch.
        learning_rate: Adam's; fine-tuning wants less than training from scratch.

    Raises:
        TrainingError: the loss became NaN or infinite; nothing is exported.
        ConversionError: the converter refused, or left float ops in the model.
    """
    start = time.perf_counter()
    qmodel, float_layers, history, engine = _fine_tune(
        model, x, y, epochs=epochs, batch_size=batch_size, validation=validation, calib=calib, seed=seed,
        on_epoch=on_epoch, learning_rate=learning_rate)
    content = _convert(qmodel)
    return QatResult(content, tuple(float_layers), tuple(history), time.perf_counter() - start, engine)


def _fine_tune(model, x, y, *, epochs, batch_size, validation, calib, seed, on_epoch, learning_rate):
    """The trained QAT Keras model (not yet converted), its float layers, history and engine."""
    from ..inputs import models

    arrays = _check(model, x, y, epochs, batch_size, learning_rate)
    with models.deterministic(seed):
        return _fine_tune_seeded(model, arrays, y, epochs=epochs, batch_size=batch_size, validation=validation,
                                 calib=calib, seed=seed, on_epoch=on_epoch, learning_rate=learning_rate)


def _fine_tune_seeded(model, arrays, y, *, epochs, batch_size, validation, calib, seed, on_epoch, learning_rate):
    reference = model.predict(arrays if len(arrays) > 1 else arrays[0], batch_size=256, verbose=0)
    val = _validation(model, validation, y is not None)
    if _is_tf_keras(model):
        qmodel, kmod = _prepare_tfmot(model)
        float_layers, engine = [], "tfmot"
    else:
        import keras as kmod

        if calib is None:
            idx = np.sort(np.random.default_rng(seed).permutation(len(arrays[0]))[:200])
            calib = [a[idx] for a in arrays]
        qmodel, float_layers = _prepare_keras(model, [a.astype(np.float32) for a in as_inputs(calib)])
        engine = "quantbench"
        for name, reason in float_layers:
            warnings.warn(f"QAT leaves layer {name!r} in float: {reason}.", stacklevel=3)
    loss, metrics, targets = _objective(kmod, reference, y)
    history = _fit(kmod, qmodel, arrays, targets, loss, metrics, epochs=epochs, batch_size=batch_size,
                   learning_rate=learning_rate, validation=val, on_epoch=on_epoch)
    return qmodel, float_layers, history, engine
