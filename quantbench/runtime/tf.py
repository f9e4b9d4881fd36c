"""The one door to TensorFlow, for the Keras model and its converters: LiteRT (litert.py) never opens it, so a
deployment needs no TensorFlow."""
from __future__ import annotations

from ..core.quiet import silenced


def import_tensorflow():
    """Import TensorFlow (its start-up logs silenced when configured); every module gets TF through here."""
    with silenced():
        import tensorflow as tf
    return tf
