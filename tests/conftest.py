"""Session-scoped fixtures: one tiny trained model and its variants, built once for the whole suite."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from quantbench.core import quiet
from quantbench.engines import techniques
from quantbench.engines.converter import convert
from quantbench.inputs import data, models

quiet.configure()  # tests that import keras first still get TensorFlow's logs silenced


@pytest.fixture(autouse=True, scope="session")
def short_timing_phases():
    """Timing phases may stop as soon as their medians are known: the 2-s floor (bench.MIN_PHASE_S) exists for
    figures a later run must reproduce, and would add seconds to every study here. Its own test sets it."""
    from quantbench.measure import timing as bench

    saved, bench.MIN_PHASE_S = bench.MIN_PHASE_S, 0.0
    yield
    bench.MIN_PHASE_S = saved


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


@pytest.fixture(scope="session")
def tiny_keras_path(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    tiny_model.save(path)
    return path


@pytest.fixture(scope="session")
def digits_npz(digits, tmp_path_factory):
    """The digits test split as a user's .npz, and the train split for calibration."""
    folder = tmp_path_factory.mktemp("data")
    np.savez(folder / "test.npz", x=digits.x_test, y=digits.y_test)
    np.savez(folder / "train.npz", x=digits.x_train, y=digits.y_train)
    return folder / "test.npz", folder / "train.npz"


SPIKE = 1000.0


@pytest.fixture(scope="session")
def spiky_model(digits):
    """Digits MLP whose first Dense layer int8 ruins: huge weights on pixel 0, which is 0 in every digit.

    Float outputs are unchanged (the pixel is always 0), but each output channel's int8 weight scale is set
    by the huge weight, so every real weight of that layer rounds to zero. Only that layer needs float.
    """
    import keras

    models.seed_everything(3)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Flatten(name="flat")(keras.layers.Rescaling(1 / 16, name="scale")(inputs))
    h = keras.layers.Dense(32, activation="relu", name="spiky")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(h)
    model = models.train(keras.Model(inputs, outputs, name="spiky_mlp"), digits.x_train, digits.y_train, epochs=8)
    assert not np.any(digits.x_train[:, 0, 0, 0]) and not np.any(digits.x_test[:, 0, 0, 0])
    kernel, bias = model.get_layer("spiky").get_weights()
    kernel[0, :] = SPIKE * np.abs(kernel).max()
    model.get_layer("spiky").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="session")
def demo_cli(tmp_path_factory):
    """`quantbench demo` with its defaults, through the CLI, as a user runs it."""
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run([sys.executable, "-m", "quantbench", "demo", "--out", str(out), "--json",
                           "--max-accuracy-drop", "0.5", "--target", "cpu", "--optimize", "size"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, proc
