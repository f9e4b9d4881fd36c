"""Rescue int8: keep the layers int8 hurts most in float, one at a time, until an accuracy budget is met.

Per-layer errors come from TensorFlow's `tf.lite.experimental.QuantizationDebugger`, which runs the
converter's own int8 kernels beside float ones. The model is calibrated once; every candidate is a
re-quantization of that calibrated model with some op outputs denylisted (`denylisted_nodes`), so a search
costs one conversion plus a fast quantization pass per candidate.
"""
from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.errors import ConversionError, InputError, one_line, reraise_interrupt
from ..core.quiet import silenced
from ..runtime.tf import import_tensorflow
from .converter import apply, as_inputs, as_source
from .techniques import get

TECHNIQUE = "int8-fallback"  # float I/O, float kernels allowed: what a denylisted layer needs


@dataclass(frozen=True)
class Step:
    """One candidate of the search: the layers it kept float, its size and `budget_ok`'s verdict."""

    float_layers: tuple[str, ...]
    bytes: int
    score: float
    ok: bool


@dataclass(frozen=True)
class SelectiveResult:
    """The search's outcome: the `.tflite` to ship (the best candidate when `met` is False) and how it got there.

    `conversions` counts converter passes: one calibrating conversion, one debug quantization, one
    quantization per step.
    """

    content: bytes
    float_layers: tuple[str, ...]
    steps: tuple[Step, ...]
    conversions: int
    seconds: float
    met: bool


class _Calibrated:
    """One calibrated int8-fallback conversion of a model, re-quantized with any op outputs kept float."""

    def __init__(self, model, calib):
        tf = import_tensorflow()
        from ..inputs.data import Dataset, validate

        source = as_source(model)
        converter = source.converter()  # a .tflite source is refused here, with the fix
        if calib is None:
            apply(converter, get(TECHNIQUE), None)  # raises the "needs calibration samples" InputError
        arrays = validate(Dataset(as_inputs(calib), None, "calibration inputs"), source, "calib").arrays()
        apply(converter, get(TECHNIQUE), arrays, source.input_names)
        self._arrays, self._order, self.passes = arrays, list(range(len(arrays))), 0
        try:
            with silenced():
                self._debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=self._samples)
        except Exception as exc:  # the converter raises many types
            reraise_interrupt()
            raise ConversionError(f"{TECHNIQUE}: {one_line(exc)}") from exc
        self.passes = 2  # the calibrating conversion and the debug model
        if len(arrays) > 1:
            self._order = self._input_order(source)

    def _samples(self):
        for i in range(len(self._arrays[0])):
            yield [self._arrays[k][i:i + 1] for k in self._order]

    def _input_order(self, source) -> list[int]:
        # The debugger feeds arrays positionally, in its debug model's input order; match them by name.
        from ..runtime.litert import LiteModel

        lite = LiteModel(self._debugger.quant_model, delegates=False)
        names = {t.index: t.name for t in lite.inputs}
        return [source.input_names.index(names[d["index"]]) for d in lite.interpreter.get_input_details()]

    def errors(self) -> list[dict]:
        """Rows of per-layer error, worst first (see `layer_errors`)."""
        try:
            with silenced():
                self._debugger.run()
        except Exception as exc:
            reraise_interrupt()
            raise ConversionError(f"{TECHNIQUE} (quantization debugger): {one_line(exc)}") from exc
        dump = io.StringIO()
        self._debugger.layer_statistics_dump(dump)
        rows = []
        for r in csv.DictReader(io.StringIO(dump.getvalue())):
            mse, scale = float(r["mean_squared_error"]), float(r["scale"])
            rows.append({"name": r["tensor_name"], "op": r["op_name"],
                         "rmse_over_scale": math.sqrt(mse) / scale if scale > 0 else math.nan,
                         "mean_squared_error": mse, "num_elements": int(float(r["num_elements"])),
                         "scale": scale})
        # Worst first; a layer without a finite error goes last, model order kept among equals.
        return sorted(rows, key=lambda r: -r["rmse_over_scale"] if math.isfinite(r["rmse_over_scale"]) else math.inf)

    def quantize(self, float_layers) -> bytes:
        """The int8 model with the ops producing `float_layers` (tensor names) left in float."""
        self._debugger.options.denylisted_nodes = list(float_layers)
        try:
            with silenced():  # the quantizer prints its settings on stdout
                content = self._debugger.get_nondebug_quantized_model()
        except Exception as exc:
            reraise_interrupt()
            raise ConversionError(f"{TECHNIQUE} with {len(float_layers)} float layer(s): {one_line(exc)}") from exc
        self.passes += 1
        return bytes(content)


def layer_errors(model, calib, top: int | None = None) -> list[dict]:
    """Per-layer error of full-int8 quantization, worst first, measured with TF's QuantizationDebugger.

    Args:
        model: a Keras model or a `quantbench.inputs.models.Source` (not a `.tflite` file).
        calib: calibration inputs (an array, a list with one array per model input, or a Dataset); the
            errors are measured on these samples too.
        top: return only the `top` worst layers.

    Returns:
        One dict per quantized op output: `name` (the tensor name `denylisted_nodes` takes), `op` (its op
        type), `rmse_over_scale` (RMS error in quantization steps; about 0.3 is plain rounding noise, the
        TF tutorial flags layers above 0.7), `mean_squared_error`, `num_elements` and `scale`.

    Raises:
        InputError: bad calibration inputs or top, or a model the converter cannot take.
        ConversionError: the converter refused; its reason in one line.
    """
    _check_count("top", top, minimum=1)
    rows = _Calibrated(model, calib).errors()
    return rows if top is None else rows[:top]


def selective(model, calib, evaluate_fn: Callable[[bytes], object], budget_ok: Callable[[object], tuple],
              *, max_float_layers: int | None = None, on_step: Callable[[Step], None] | None = None
              ) -> SelectiveResult:
    """Full int8, then the worst layers kept float one at a time until `budget_ok` accepts the outputs.

    Args:
        model: a Keras model or a `quantbench.inputs.models.Source` (not a `.tflite` file).
        calib: calibration inputs (an array, a list with one array per model input, or a Dataset).
        evaluate_fn: `.tflite` bytes -> outputs (for example `quantbench.load(b).predict(x)`).
        budget_ok: outputs -> `(ok, score)`; a higher score is better. When no candidate is ok, the result
            is the candidate with the highest score.
        max_float_layers: stop after keeping this many layers float (default: every layer).
        on_step: called with each `Step` as it is measured (progress).

    Raises:
        InputError: bad calibration inputs, max_float_layers or budget_ok result, or a model the converter
            cannot take.
        ConversionError: the converter refused; its reason in one line.
    """
    _check_count("max_float_layers", max_float_layers, minimum=0)
    start = time.perf_counter()
    engine = _Calibrated(model, calib)
    order = [row["name"] for row in engine.errors()]
    limit = len(order) if max_float_layers is None else min(max_float_layers, len(order))
    steps, best = [], None
    for k in range(limit + 1):
        layers = tuple(order[:k])
        content = engine.quantize(layers)
        ok, score = _verdict(budget_ok(evaluate_fn(content)))
        step = Step(layers, len(content), score, ok)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        if best is None or score > best[0].score:
            best = (step, content)
        if ok:
            best = (step, content)
            break
    step, content = best
    return SelectiveResult(content, step.float_layers, tuple(steps), engine.passes,
                           time.perf_counter() - start, step.ok)


def _verdict(result) -> tuple[bool, float]:
    if (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], (bool, np.bool_))
            and isinstance(result[1], (int, float, np.integer, np.floating)) and not isinstance(result[1], bool)):
        return bool(result[0]), float(result[1])
    raise InputError(f"budget_ok returned {result!r:.80}. Expected a pair (ok: bool, score: float), a higher "
                     "score being better. Fix: return e.g. (accuracy >= 0.97, accuracy).")


def _check_count(name: str, value, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} is {value!r}. Expected None or a whole number >= {minimum}. "
                         f"Fix: pass {name}=None or a count such as {max(minimum, 1)}.")
