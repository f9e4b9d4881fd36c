"""quantbench: every TFLite (LiteRT) variant of a Keras model, measured honestly.

`import quantbench` imports no TensorFlow; the functions that need it import it when called.
"""
__version__ = "0.1.0"

from .errors import ConversionError, InputError, QuantbenchError  # noqa: E402
from .runtime import LiteModel, load  # noqa: E402


def convert(model, technique, calib=None):
    """Convert a Keras model with one technique; see `quantbench.conversion.convert`."""
    from .conversion import convert as _convert

    return _convert(model, technique, calib)


def demo(**kwargs):
    """Run the reference experiment; see `quantbench.study.demo`."""
    from .study import demo as _demo

    return _demo(**kwargs)


def compare(model, data, **kwargs):
    """Study a model file on a data file; see `quantbench.study.compare`."""
    from .study import compare as _compare

    return _compare(model, data, **kwargs)


def run_study(*args, **kwargs):
    """Study a Keras model with every technique; see `quantbench.study.run_study`."""
    from .study import run_study as _run

    return _run(*args, **kwargs)


__all__ = ["ConversionError", "InputError", "LiteModel", "QuantbenchError", "compare", "convert", "demo", "load",
           "run_study", "__version__"]
