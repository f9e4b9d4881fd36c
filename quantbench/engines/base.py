"""The engines that make variants: each knows how to make a technique's variant and when it must skip.

A technique names its engine (`Technique.engine`); the study asks the engine, never compares names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError
from .converter import Conversion
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
    leaks = True  # TensorFlow's converter keeps memory after each call: a worker is replaced after a few
    reads_tflite = False  # makes its variant from a float .tflite alone, without the TensorFlow model
    fine_tunes = False    # trains the model first (--qat-epochs adds it; `convert` cannot make it)
    asked_for = True      # False: the study makes it itself (the recommendation's rescue), never from --techniques

    def skip(self, source, technique: Technique, given: Inputs) -> str | None:
        """Why this technique cannot be made here, or None."""
        return None

    def make(self, source, technique: Technique, given: Inputs) -> Conversion:
        raise NotImplementedError

    def family(self, techniques: list[Technique]) -> list[Technique]:
        """Those of `techniques` this engine makes from one shared calibration (`make_family`)."""
        return []

    def make_family(self, source, techniques: list[Technique], given: Inputs) -> dict:
        """name -> `Conversion`, or the `ConversionError` of a refused one, for `family(...)` techniques."""
        raise NotImplementedError


class Converter(Engine):
    name = "converter"

    def skip(self, source, technique, given):
        if source.lite is not None:
            return "needs the TensorFlow model (.keras, .h5 or SavedModel); only a .tflite was given"
        return None

    def make(self, source, technique, given):
        from .converter import convert

        return convert(source, technique, given.calib)

    def family(self, techniques):
        from .converter import shares_calibration

        return [t for t in techniques if t.engine == self.name and shares_calibration(t)]

    def make_family(self, source, techniques, given):
        from .converter import convert_family

        return convert_family(source, techniques, given.calib)


class LiteRTQuantizer(Engine):
    name = "litert-quantizer"
    needs_float_tflite = True
    reads_tflite = True
    leaks = False  # works on the flatbuffer, without TensorFlow

    def make(self, source, technique, given):
        from . import litert_quantizer as lq

        return lq.make(self._float(source, given), technique, self._calib(source, given) if technique.calibrate
                       else None)

    def family(self, techniques):
        return [t for t in techniques if t.engine == self.name and t.calibrate]

    def make_family(self, source, techniques, given):
        from . import litert_quantizer as lq

        return lq.quantize_family(self._float(source, given), techniques, self._calib(source, given))

    @staticmethod
    def _float(source, given) -> bytes:
        """The starting point: the .tflite given, the study's float32 variant, else a float32 conversion."""
        from .converter import convert

        if source.lite is not None:
            return source.lite_bytes()
        if given.float_tflite and Path(given.float_tflite).is_file():
            return Path(given.float_tflite).read_bytes()
        return convert(source, "float32").content

    @staticmethod
    def _calib(source, given):
        calib = given.calib
        return calib if calib is None else calib[0] if len(calib) == 1 else dict(zip(source.input_names, calib))


class QuantizationAwareTraining(Engine):
    name = "qat"
    fine_tunes = True

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
    asked_for = False

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


def registered() -> list[Engine]:
    """Every engine, in the order registered."""
    return list(_ENGINES.values())


def of(technique: Technique) -> Engine:
    """The engine that makes `technique`."""
    return _ENGINES[technique.engine]


for _engine in (Converter(), LiteRTQuantizer(), QuantizationAwareTraining(), Selective()):
    register(_engine)
