"""quantbench: every TFLite (LiteRT) variant of a Keras model, measured honestly.

`import quantbench` imports no TensorFlow; the functions that need it import it when called.
"""
from .core.errors import ConversionError, InputError, QuantbenchError
from .core.version import __version__
from .runtime.litert import LiteModel, load


def convert(model, technique, calib=None):
    """Convert a Keras model with one technique; see `quantbench.engines.converter.convert`."""
    from .engines.converter import convert as _convert

    return _convert(model, technique, calib)


def demo(**kwargs):
    """Run the reference experiment; see `quantbench.study.pipeline.demo`."""
    from .study.pipeline import demo as _demo

    return _demo(**kwargs)


def compare(model, data, **kwargs):
    """Study a model file on a data file; see `quantbench.study.pipeline.compare`."""
    from .study.pipeline import compare as _compare

    return _compare(model, data, **kwargs)


def run_study(*args, **kwargs):
    """Study a Keras model with every technique; see `quantbench.study.pipeline.run_study`."""
    from .study.pipeline import run_study as _run

    return _run(*args, **kwargs)


__all__ = ["ConversionError", "InputError", "LiteModel", "QuantbenchError", "compare", "convert", "demo", "load",
           "run_study", "__version__"]
