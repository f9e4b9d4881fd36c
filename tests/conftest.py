"""Session-scoped fixtures: one tiny trained model and its variants, built once for the whole suite."""
from __future__ import annotations

import numpy as np
import pytest

from quantbench import data, models, techniques
from quantbench.conversion import convert


@pytest.fixture(scope="session")
def digits():
    return data.digits()


@pytest.fixture(scope="session")
def tiny_model(digits):
    """A small CNN trained for 2 epochs on digits: enough signal for quantization to matter."""
    import keras

    models.seed_everything(1)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inputs, outputs, name="tiny")
    return models.train(model, digits.x_train, digits.y_train, epochs=2)


@pytest.fixture(scope="session")
def calib(digits):
    return data.calibration_sample(digits.x_train, 64, seed=0)


@pytest.fixture(scope="session")
def tiny_variants(tiny_model, calib):
    """technique name -> .tflite bytes, for every converter technique."""
    return {name: convert(tiny_model, name, calib).content for name in techniques.CONVERTER_TECHNIQUES}


@pytest.fixture
def rng():
    return np.random.default_rng(0)
