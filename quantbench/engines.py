"""The engines that make variants: each knows how to make a technique's variant and when it must skip.

A technique names its engine (`Technique.engine`); the study asks the engine, never compares names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .conversion import Conversion
from .errors import InputError
from .techniques import Technique


@dataclass(frozen=True)
class Inputs:
    """What a study gives an engine besides the model: calibration inputs, a float32 `.tflite` already made
    (the LiteRT Quantizer's starting point), and the QAT settings."""

    calib: list | None = None
    float_tflite: str | None = None   # path of the study's float32 variant, when it has one
    qat: dict = field(default_factory=lambda: {"epochs": 0, "train": None, "seed": 0})


class Engine:
    """Makes a technique's `.tflite` from a `models.Source`."""

    name = ""
    needs_float_tflite = False  # starts from the float32 variant: the study converts that first

    def skip(self, source, technique: Technique, given: Inputs) -> str | None:
        """Why this technique cannot be made here, or None."""
        return None

    def make(self, source, technique: Technique, given: Inputs) -> Conversion:
        raise NotImplementedError


class Converter(Engine):
    name = "converter"

    def skip(self, source, technique, given):
        if source.lite is not None:
            return "needs the TensorFlow model (.keras, .h5 or SavedModel); only a .tflite was given"
        return None

    def make(self, source, technique, given):
        from .conversion import convert

        return convert(source, technique, given.calib)


class LiteRTQuantizer(Engine):
    name = "litert-quantizer"
    needs_float_tflite = True

    def make(self, source, technique, given):
        from . import lq
        from .conversion import convert

        if source.lite is not None:
            content = source.lite_bytes()
        elif given.float_tflite and Path(given.float_tflite).is_file():
            content = Path(given.float_tflite).read_bytes()
        else:
            content = convert(source, "float32").content
        calib = given.calib
        if calib is not None and technique.calibrate:
            calib = calib[0] if len(calib) == 1 else dict(zip(source.input_names, calib))
        return lq.make(content, technique, calib if technique.calibrate else None)


class QuantizationAwareTraining(Engine):
    name = "qat"

    def skip(self, source, technique, given):
        if given.qat["epochs"] < 1:
            return f"{technique.name} fine-tunes the model: pass --qat-epochs N (N ≥ 1)"
        if source.keras is None:
            return f"{technique.name} fine-tunes a Keras model; a {source.kind} cannot be trained"
        return None

    def make(self, source, technique, given):
        from .qat import qat

        x, y = given.qat["train"] or (given.calib, None)
        return qat(source.keras, x, y, epochs=given.qat["epochs"], calib=given.calib, seed=given.qat["seed"])


class Selective(Engine):
    name = "selective"

    def skip(self, source, technique, given):
        return ("made by the recommendation step when no integer variant meets --max-accuracy-drop; "
                "set the budget instead of asking for it")

    def make(self, source, technique, given):
        raise InputError(f"{technique.name} cannot be asked for: the recommendation makes it when no integer variant "
                         "meets --max-accuracy-drop. Fix: drop it from --techniques; set the budget instead.")


_ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Add an engine; a second one with the same name is refused."""
    if engine.name in _ENGINES:
        raise ValueError(f"An engine named {engine.name!r} is already registered.")
    _ENGINES[engine.name] = engine
    return engine


def of(technique: Technique) -> Engine:
    """The engine that makes `technique`."""
    return _ENGINES[technique.engine]


for _engine in (Converter(), LiteRTQuantizer(), QuantizationAwareTraining(), Selective()):
    register(_engine)
