"""Turn a TensorFlow model into `.tflite` bytes with TensorFlow's TFLiteConverter, one technique at a time."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .errors import ConversionError, InputError, one_line
from .quiet import import_tensorflow, silenced
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
    from .models import Source, from_keras

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
        model: a Keras model or a `quantbench.models.Source`.
        technique: a technique name or object (see `quantbench.techniques.names()`).
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
        raise ConversionError(f"{technique.name}: {one_line(exc)}") from exc
    return Conversion(technique.name, bytes(content), time.perf_counter() - start)
