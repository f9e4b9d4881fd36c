import numpy as np
import pytest

import quantbench
from quantbench.core import quiet
from quantbench.core.errors import ConversionError, InputError
from quantbench.engines.converter import convert
from quantbench.engines.selective import SelectiveResult, Step, layer_errors, selective
from quantbench.inputs import models
from quantbench.inputs.inspection import inspect
from quantbench.measure import evaluate
from quantbench.runtime.tf import import_tensorflow

from conftest import SPIKE

@pytest.fixture(scope="session")
def float_accuracy(spiky_model, digits):
    return evaluate.accuracy(spiky_model.predict(digits.x_test, verbose=0), digits.y_test)


def accuracy_of(content, digits):
    return evaluate.accuracy(quantbench.load(content).predict(digits.x_test), digits.y_test)


@pytest.fixture(scope="session")
def rows(spiky_model, calib):
    return layer_errors(spiky_model, calib)


@pytest.fixture(scope="session")
def search(spiky_model, calib, digits, float_accuracy):
    """selective() under a 2 pp budget, and the steps it reported as it went."""
    seen = []
    budget = float_accuracy - 0.02
    result = selective(spiky_model, calib,
                       evaluate_fn=lambda content: quantbench.load(content).predict(digits.x_test),
                       budget_ok=lambda probs: ((acc := evaluate.accuracy(probs, digits.y_test)) >= budget, acc),
                       on_step=seen.append)
    return result, seen


def spiky_name(rows):
    return next(r["name"] for r in rows if "spiky" in r["name"])


def test_layer_errors_rank_the_spiky_layer_first(rows, spiky_model, calib):
    assert [r["op"] for r in rows].count("FULLY_CONNECTED") == 2
    worst, rest = rows[0], rows[1:]
    assert "spiky" in worst["name"] and worst["op"] == "FULLY_CONNECTED"
    assert worst["num_elements"] == 32 and worst["scale"] > 0
    assert worst["rmse_over_scale"] == pytest.approx(np.sqrt(worst["mean_squared_error"]) / worst["scale"])
    # Rounding noise is about 0.3 steps; the crushed weights make this layer's error far larger.
    assert worst["rmse_over_scale"] > 10 and all(r["rmse_over_scale"] < 1 for r in rest)
    assert [r["rmse_over_scale"] for r in rows] == sorted((r["rmse_over_scale"] for r in rows), reverse=True)
    assert layer_errors(spiky_model, calib, top=1) == rows[:1]


def test_plain_int8_misses_the_budget(spiky_model, calib, digits, float_accuracy):
    int8 = convert(spiky_model, "int8-fallback", calib).content
    assert float_accuracy > 0.9
    assert accuracy_of(int8, digits) < 0.5


def test_selective_keeps_only_the_spiky_layer_float(search, rows, digits, float_accuracy):
    result, seen = search
    name = spiky_name(rows)
    assert isinstance(result, SelectiveResult) and result.met
    assert result.float_layers == (name,)
    assert [s.float_layers for s in result.steps] == [(), (name,)]
    assert [s.ok for s in result.steps] == [False, True]
    assert list(result.steps) == seen
    assert result.conversions == 2 + 2 and result.seconds > 0
    acc = accuracy_of(result.content, digits)
    assert acc >= float_accuracy - 0.02 and acc == pytest.approx(result.steps[-1].score)
    assert result.steps[0].score < 0.5
    # The float layer's 64x32 weights take 4 bytes each instead of 1, less the int8 scales it no longer needs.
    assert len(result.content) == result.steps[-1].bytes
    assert 2 * 64 * 32 < result.steps[-1].bytes - result.steps[0].bytes <= 3 * 64 * 32


def test_selective_model_runs_that_layer_in_float(search):
    info = inspect(search[0].content)
    assert info.precision["FULLY_CONNECTED"] == {"float": 1, "int8": 1}
    assert info.inputs[0].dtype == info.outputs[0].dtype == "float32"


def test_impossible_budget_returns_the_best_candidate(spiky_model, calib, digits, rows):
    steps_scores = []

    def never(probs):
        acc = evaluate.accuracy(probs, digits.y_test)
        steps_scores.append(acc)
        return False, acc

    result = selective(spiky_model, calib, lambda c: quantbench.load(c).predict(digits.x_test), never)
    layers = [r["name"] for r in rows]
    assert not result.met
    assert [s.float_layers for s in result.steps] == [tuple(layers[:k]) for k in range(len(layers) + 1)]
    best = max(result.steps, key=lambda s: s.score)
    assert result.float_layers == best.float_layers and len(result.content) == best.bytes
    assert accuracy_of(result.content, digits) == pytest.approx(max(steps_scores))


def test_max_float_layers_stops_the_search(spiky_model, calib, digits):
    result = selective(spiky_model, calib, lambda c: quantbench.load(c).predict(digits.x_test[:50]),
                       lambda probs: (False, 0.0), max_float_layers=0)
    assert not result.met and result.float_layers == () and len(result.steps) == 1
    assert result.steps[0] == Step((), len(result.content), 0.0, False)


def test_int8_that_meets_the_budget_keeps_nothing_float(spiky_model, calib, digits):
    result = selective(spiky_model, calib, lambda c: quantbench.load(c).predict(digits.x_test[:50]),
                       lambda probs: (True, 1.0))
    assert result.met and result.float_layers == () and len(result.steps) == 1 and result.conversions == 3
    assert inspect(result.content).float_compute_ops == 0


def test_a_savedmodel_source_works_too(spiky_model, calib, tmp_path):
    path = tmp_path / "saved"
    with quiet.silenced():
        spiky_model.export(str(path))
    rows = layer_errors(models.load_model(path), calib, top=1)
    assert "spiky" in rows[0]["name"] and rows[0]["rmse_over_scale"] > 10


def test_two_input_model_gets_its_arrays_in_order(digits):
    """The debugger feeds inputs positionally; a swapped pair would measure the wrong layer."""
    import keras

    models.seed_everything(0)
    a = keras.Input((4,), name="a")
    b = keras.Input((64,), name="b")
    spiky = keras.layers.Dense(8, name="spiky_b")(b)
    out = keras.layers.Dense(3, name="head")(keras.layers.Concatenate()([keras.layers.Dense(8, name="dense_a")(a),
                                                                           spiky]))
    model = keras.Model([a, b], out)
    kernel, bias = model.get_layer("spiky_b").get_weights()
    kernel[0, :] = SPIKE * np.abs(kernel).max()
    model.get_layer("spiky_b").set_weights([kernel, bias])
    x_b = digits.x_train[:32].reshape(32, 64)  # column 0 is always 0
    x_a = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    rows = layer_errors(model, [x_a, x_b], top=1)
    assert "spiky_b" in rows[0]["name"]


# ---- Errors ------------------------------------------------------------------------------------


def test_tflite_source_is_refused(tmp_path, spiky_model, calib):
    path = tmp_path / "m.tflite"
    path.write_bytes(convert(spiky_model, "float32").content)
    with pytest.raises(InputError, match=r"m\.tflite is a \.tflite file; TFLiteConverter needs the TensorFlow "
                                         r"model it came from\. Fix: pass the \.keras"):
        layer_errors(models.load_model(path), calib)


def test_missing_calibration_is_refused(spiky_model):
    with pytest.raises(InputError, match=r"'int8-fallback' needs calibration samples and got none.*Fix: pass"):
        layer_errors(spiky_model, None)


def test_calibration_of_the_wrong_shape_is_refused(spiky_model, digits):
    with pytest.raises(InputError, match=r"Input 'image' in calibration inputs \(calib\) has shape \(8, 64\), "
                                         r"but the model expects \(N, 8, 8, 1\)\. Fix: reshape"):
        layer_errors(spiky_model, digits.x_train[:8].reshape(8, 64))


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_bad_top_is_refused(spiky_model, calib, value):
    with pytest.raises(InputError, match=rf"top is {value!r}\. Expected None or a whole number >= 1\. "
                                         r"Fix: pass top=None"):
        layer_errors(spiky_model, calib, top=value)


def test_bad_max_float_layers_is_refused(spiky_model, calib):
    with pytest.raises(InputError, match=r"max_float_layers is -1\. Expected None or a whole number >= 0\."):
        selective(spiky_model, calib, bytes, lambda o: (True, 1.0), max_float_layers=-1)


BAD_VERDICT = (r"budget_ok returned .*\. Expected a pair \(ok: bool, score: float\), a higher score being better\. "
               r"Fix: return e\.g\. \(accuracy >= 0\.97")


def test_budget_ok_must_return_ok_and_score(spiky_model, calib):
    with pytest.raises(InputError, match=BAD_VERDICT):
        selective(spiky_model, calib, len, lambda outputs: True)


@pytest.mark.parametrize("verdict", [0.9, (0.9, True), ("yes", 1.0), (True, 1.0, 2), (True, None)])
def test_every_malformed_verdict_is_refused(verdict):
    from quantbench.engines.selective import _verdict

    with pytest.raises(InputError, match=BAD_VERDICT):
        _verdict(verdict)
    assert _verdict((np.bool_(True), np.float32(0.5))) == (True, 0.5)


def test_evaluate_fn_errors_are_the_callers(spiky_model, calib):
    def broken(content):
        raise RuntimeError("my evaluation broke")

    with pytest.raises(RuntimeError, match="my evaluation broke"):
        selective(spiky_model, calib, broken, lambda o: (True, 1.0))


def test_converter_refusal_is_one_line(calib):
    import keras

    tf = import_tensorflow()

    class Determinant(keras.layers.Layer):  # no TFLite builtin kernel, and Select TF ops are not enabled
        def call(self, x):
            m = tf.reshape(x, (-1, 8, 8))
            return tf.reshape(tf.linalg.det(m), (-1, 1))

    inputs = keras.Input((8, 8, 1), name="image")
    model = keras.Model(inputs, Determinant()(inputs))
    with pytest.raises(ConversionError) as info:
        layer_errors(model, calib)
    message = str(info.value)
    assert message.startswith("int8-fallback: ") and "\n" not in message and len(message) <= 420
