"""Turn a TensorFlow model into `.tflite` bytes with TensorFlow's TFLiteConverter, one technique at a time."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..core.errors import ConversionError, InputError, QuantbenchError, one_line, reraise_interrupt
from ..core.quiet import silenced
from ..runtime.tf import import_tensorflow
from .techniques import Technique, get


@dataclass(frozen=True)
class Conversion:
    technique: str
    content: bytes
    seconds: float


def _representative(calib: list[np.ndarray], names: list[str]):
    def gen():
        for i in range(len(calib[0])):
            sample = [a[i:i + 1].astype(np.float32) for a in calib]
            # One input: positional (its signature name may differ from the Keras tensor's); several: by name.
            yield sample if len(sample) == 1 else dict(zip(names, sample))
    return gen


def as_inputs(calib) -> list[np.ndarray]:
    if hasattr(calib, "arrays"):  # a data.Dataset
        return calib.arrays()
    if isinstance(calib, (list, tuple)):
        return [np.asarray(a) for a in calib]
    return [np.asarray(calib)]


def as_source(model):
    """A `models.Source` for a Source or an in-memory Keras model."""
    from ..inputs.models import Source, from_keras

    return model if isinstance(model, Source) else from_keras(model)


def apply(converter, technique: Technique, calib=None, names: list[str] | None = None) -> None:
    """Set the converter's options from the technique's data."""
    tf = import_tensorflow()
    if technique.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if technique.calibrate:
        arrays = as_inputs(calib) if calib is not None else []
        if not arrays or len(arrays[0]) == 0:
            raise InputError(
                f"Technique {technique.name!r} needs calibration samples and got none. "
                "Expected a few hundred representative inputs. Fix: pass --calib FILE or data to draw them from.")
        converter.representative_dataset = _representative(arrays, names or [])
    if technique.ops:
        converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, name) for name in technique.ops]
    if technique.types:
        converter.target_spec.supported_types = [getattr(tf, name) for name in technique.types]
    if technique.io_dtype:
        converter.inference_input_type = getattr(tf, technique.io_dtype)
        converter.inference_output_type = getattr(tf, technique.io_dtype)


def convert(model, technique: str | Technique, calib=None) -> Conversion:
    """Convert `model` with one technique.

    Args:
        model: a Keras model or a `quantbench.inputs.models.Source`.
        technique: a technique name or object (see `quantbench.engines.techniques.names()`).
        calib: calibration inputs (an array, a list with one array per model input, or a Dataset).

    Raises:
        ConversionError: the converter refused; the message is its reason in one line.
    """
    technique = get(technique)
    if technique.engine != "converter":
        raise InputError(f"Technique {technique.name!r} is made by the {technique.engine} engine, "
                         "not by TFLiteConverter. Fix: use quantbench.compare or the CLI for it.")
    source = as_source(model)
    converter = source.converter()
    apply(converter, technique, calib, source.input_names)
    start = time.perf_counter()
    try:
        with silenced():
            content = converter.convert()
    except Exception as exc:  # the converter raises many types; each becomes a failed row
        reraise_interrupt()
        raise ConversionError(f"{technique.name}: {one_line(exc)}") from exc
    return Conversion(technique.name, bytes(content), time.perf_counter() - start)


# ---- One calibration for the converter's int8 family ----------------------------------------------------------
#
# TFLiteConverter calibrates every technique from scratch: it converts the model to float, runs the
# representative dataset through it, then quantizes. int8-fallback, int8-only, uint8-only and int16x8 calibrate
# the same float model on the same samples, so one calibration can serve all four, as TF's
# QuantizationDebugger does (`_experimental_calibrate_only`, then one quantization per variant). Each
# quantization then ends as `TFLiteConverter.convert` ends: read-only buffers deduplicated, conversion
# metadata (with the model's hash) appended. The files are byte-identical to `convert`'s (tests/test_conversion.py;
# measured on MobileNetV2 in BENCHMARKS.md). This relies on TF 2.21 internals that the debugger also uses.

_INT16_OPS = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"


@dataclass(frozen=True)
class _Requantize:
    """How the converter quantizes a calibrated model for one technique (lite.py's `_quantize`)."""

    activations: str         # "int8": the MLIR quantizer; "int16": TF's 16x8 quantizer, as lite.py picks
    io_dtype: str            # input and output type
    allow_float: bool        # the 16x8 quantizer refuses ops it cannot quantize when False


def _requantize(technique: Technique) -> _Requantize | None:
    """The quantization step alone that reproduces `technique`, or None when a shared calibration cannot."""
    if technique.engine != "converter" or not (technique.optimize and technique.calibrate) or technique.types:
        return None
    ops = set(technique.ops) or {"TFLITE_BUILTINS"}  # the converter's default op set
    if ops in ({"TFLITE_BUILTINS"}, {"TFLITE_BUILTINS_INT8"}) and technique.io_dtype in (None, "int8", "uint8"):
        return _Requantize("int8", technique.io_dtype or "float32", allow_float=True)
    if ops == {_INT16_OPS} and technique.io_dtype is None:
        return _Requantize("int16", "float32", allow_float=False)
    return None


def shares_calibration(technique: str | Technique) -> bool:
    """Whether `convert_family` makes this technique from the family's one calibration."""
    return _requantize(get(technique)) is not None


def _calibrate(source, technique: Technique, calib):
    """The calibrated float model (min/max of every tensor recorded in it) and the converter that made it."""
    converter = source.converter()
    apply(converter, technique, calib, source.input_names)
    converter._experimental_calibrate_only = True   # what QuantizationDebugger sets: stop after calibration
    converter.exclude_conversion_metadata = True    # each variant gets its own, as convert() writes it
    with silenced():
        return bytes(converter.convert()), converter


def _quantize_calibrated(calibrated: bytes, how: _Requantize, converter) -> bytes:
    """One variant from the calibrated model, finished as `TFLiteConverter.convert` finishes it."""
    import copy

    tf = import_tensorflow()
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as metadata_fb
    from tensorflow.lite.python import lite as tf_lite
    from tensorflow.lite.python.convert import deduplicate_readonly_buffers, mlir_quantize
    from tensorflow.lite.python.optimize import calibrator
    from tensorflow.lite.python.util import populate_conversion_metadata
    from tensorflow.lite.tools import flatbuffer_utils

    io = getattr(tf, how.io_dtype)
    with silenced():  # the quantizers print their settings
        if how.activations == "int8":
            content = mlir_quantize(calibrated, input_data_type=io, output_data_type=io)
            mode = metadata_fb.ModelOptimizationMode.PTQ_FULL_INTEGER
        else:
            # lite.py quantizes int16 activations with this (older) quantizer; fed no new samples, it reads the
            # min/max the calibration stored in the model. (mlir_quantize's QUANTIZED_INT16 writes int16 tensors
            # with non-zero zero points that LiteRT refuses to load.)
            content = calibrator.Calibrator(calibrated).calibrate_and_quantize(
                lambda: iter(()), io, io, how.allow_float, activations_type=tf.int16, bias_type=tf.int64)
            mode = metadata_fb.ModelOptimizationMode.PTQ_INT16
    model = flatbuffer_utils.convert_bytearray_to_object(deduplicate_readonly_buffers(content))
    metadata = copy.deepcopy(converter._metadata)
    metadata.options.modelOptimizationModes = [mode, *tf_lite._get_sparsity_modes(model)]
    metadata.environment.modelHash = tf_lite._get_model_hash(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(populate_conversion_metadata(model, metadata)))


def convert_family(model, techniques, calib=None) -> dict[str, Conversion | ConversionError]:
    """Convert `model` with several techniques, calibrating once for those of the int8 family that share it.

    int8-fallback, int8-only, uint8-only and int16x8 (any converter technique `shares_calibration` accepts) are
    quantized from one calibration, giving the files `convert` gives; every other technique, and any that the
    shared quantization refuses, is converted by `convert` on its own.

    Args:
        model: a Keras model or a `quantbench.inputs.models.Source`.
        techniques: technique names or objects, converter engine only.
        calib: calibration inputs (an array, a list with one array per model input, or a Dataset).

    Returns:
        technique name -> its `Conversion`, or the `ConversionError` saying why the converter refused it; a
        refusal never stops the others. `seconds` of a shared technique is its own quantization plus an equal
        share of the one calibrating conversion, so the family's seconds add up to its wall time.

    Raises:
        InputError: an unknown or non-converter technique, or calibration samples missing.
    """
    chosen = list(dict.fromkeys(get(t) for t in techniques))  # each once, in the order given
    for t in chosen:
        if t.engine != "converter":
            raise InputError(f"Technique {t.name!r} is made by the {t.engine} engine, not by TFLiteConverter. "
                             "Fix: pass converter techniques only to convert_family.")
    source = as_source(model)
    shared = [t for t in chosen if _requantize(t) is not None]
    if len(shared) < 2:  # nothing to share
        shared = []
    out: dict[str, Conversion | ConversionError] = {}

    def on_its_own(t: Technique, spent: float = 0.0) -> None:
        try:
            conv = convert(source, t, calib)
        except ConversionError as exc:
            out[t.name] = exc
        else:
            out[t.name] = Conversion(t.name, conv.content, conv.seconds + spent)

    if shared:
        start = time.perf_counter()
        try:
            calibrated, converter = _calibrate(source, shared[0], calib)
        except QuantbenchError:
            raise
        except Exception as exc:  # the calibrating conversion is shared[0]'s own conversion: its refusal
            reraise_interrupt()
            out[shared[0].name] = ConversionError(f"{shared[0].name}: {one_line(exc)}")
            shared = shared[1:]
            calibrated = None
        share = (time.perf_counter() - start) / len(shared) if shared else 0.0
        for t in shared:
            if calibrated is None:
                on_its_own(t)
                continue
            begin = time.perf_counter()
            try:
                content = _quantize_calibrated(calibrated, _requantize(t), converter)
            except Exception:  # the converter may still make it, or refuse it with its own reason
                reraise_interrupt()
                on_its_own(t, share + time.perf_counter() - begin)
            else:
                out[t.name] = Conversion(t.name, content, share + time.perf_counter() - begin)
    for t in chosen:
        if t.name not in out:
            on_its_own(t)
    return {t.name: out[t.name] for t in chosen}
