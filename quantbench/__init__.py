"""quantbench: every TFLite (LiteRT) variant of a Keras model, measured honestly.

`import quantbench` imports no TensorFlow. `compare`, `demo`, `run_study`, `StudyConfig` and `Goal` are the study
layer's own functions and classes, with their own signatures; they are imported on first use (a study needs
TensorFlow, `import quantbench` does not).
"""
from .core.errors import ConversionError, InputError, QuantbenchError
from .core.version import __version__
from .runtime.litert import LiteModel, load

_STUDY = {"compare": "quantbench.study.pipeline", "demo": "quantbench.study.pipeline",
          "run_study": "quantbench.study.pipeline", "StudyConfig": "quantbench.study.config",
          "Goal": "quantbench.study.recommend"}


def convert(model, technique, calib=None):
    """Convert a Keras model with one technique; see `quantbench.engines.converter.convert`."""
    from .engines.converter import convert as _convert

    return _convert(model, technique, calib)


def __getattr__(name: str):
    if name in _STUDY:
        import importlib

        value = getattr(importlib.import_module(_STUDY[name]), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'quantbench' has no attribute {name!r}")


__all__ = ["ConversionError", "Goal", "InputError", "LiteModel", "QuantbenchError", "StudyConfig", "compare",
           "convert", "demo", "load", "run_study", "__version__"]
