"""Models: the reference CNN of the article, and its seeded training."""
from __future__ import annotations

import numpy as np

from .quiet import import_tensorflow


def seed_everything(seed: int) -> None:
    """Same seed, same weights, same accuracy figures: seeds Python, NumPy and TF, deterministic ops."""
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def reference_cnn(input_shape=(8, 8, 1), classes: int = 10):
    """The article's CNN: Conv2D 64/32/32 (3x3, ReLU), Flatten, Dense 32 ReLU, Dense softmax."""
    import_tensorflow()
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="image")
    h = layers.Conv2D(64, 3, activation="relu")(inputs)
    h = layers.Conv2D(32, 3, activation="relu")(h)
    h = layers.Conv2D(32, 3, activation="relu")(h)
    h = layers.Flatten()(h)
    h = layers.Dense(32, activation="relu")(h)
    outputs = layers.Dense(classes, activation="softmax", name="digit")(h)
    return keras.Model(inputs, outputs, name="reference_cnn")


def train(model, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int = 32, on_epoch=None):
    """Fit with Adam and sparse categorical cross-entropy; `on_epoch(epoch, logs)` reports progress."""
    import keras

    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=on_epoch)] if on_epoch else []
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True, callbacks=callbacks)
    return model
