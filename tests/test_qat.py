"""Quantization-aware training: Keras 3 and tf_keras models, labels or distillation, exported integer-only."""
import os
import warnings

import numpy as np
import pytest

from quantbench.core.errors import InputError, TrainingError
from quantbench.engines import qat as qat_module
from quantbench.engines.converter import convert
from quantbench.engines.qat import float_ops, qat
from quantbench.inputs import models
from quantbench.measure import evaluate
from quantbench.runtime.litert import LiteModel
from quantbench.study.config import StudyConfig

N_TRAIN = 400  # enough for one epoch to move the model, few enough to keep each call a few seconds


def keras_cnn(*middle, classes=10, activation="softmax"):
    """Conv2D → [middle layers] → Flatten → Dense, in Keras 3."""
    import keras

    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    for layer in middle:
        h = layer(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(classes, activation=activation)(h))


@pytest.fixture(scope="session")
def train(digits):
    return digits.x_train[:N_TRAIN], digits.y_train[:N_TRAIN]


@pytest.fixture(scope="session")
def tf_keras_model(digits):
    """The tiny CNN again, as a legacy tf_keras model."""
    _, tf_keras = qat_module._import_tfmot()
    tf_keras.utils.set_random_seed(1)
    inputs = tf_keras.Input((8, 8, 1))
    h = tf_keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    h = tf_keras.layers.Flatten()(h)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(10, activation="softmax")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="session")
def results(tiny_model, tf_keras_model, train):
    """The same qat() call on a Keras 3 model and on a tf_keras model."""
    out = {}
    for name, model in (("keras3", tiny_model), ("tf_keras", tf_keras_model)):
        epochs = []
        result = qat(model, *train, epochs=2, on_epoch=lambda e, logs: epochs.append((e, logs)))
        out[name] = (model, result, epochs)
    return out


@pytest.mark.parametrize("kind, engine", [("keras3", "quantbench"), ("tf_keras", "tfmot")])
def test_same_call_works_for_keras3_and_tf_keras(results, digits, kind, engine):
    model, result, epochs = results[kind]
    assert result.engine == engine and result.float_layers == ()
    assert [e for e, _ in epochs] == [0, 1] and len(result.history) == 2
    assert {"loss", "accuracy"} <= set(result.history[0]) and result.history[-1] == epochs[-1][1]
    float_acc = evaluate.accuracy(model.predict(digits.x_test, verbose=0), digits.y_test)
    int8_acc = evaluate.accuracy(LiteModel(result.content).predict(digits.x_test), digits.y_test)
    assert int8_acc >= float_acc - 0.03, (int8_acc, float_acc)


@pytest.mark.parametrize("kind", ["keras3", "tf_keras"])
def test_export_is_integer_only_with_int8_io(results, kind):
    content = results[kind][1].content
    m = LiteModel(content)
    assert [t.dtype for t in m.inputs] == ["int8"] and [t.dtype for t in m.outputs] == ["int8"]
    assert float_ops(content) == []


def test_float_ops_sees_float_models(tiny_variants):
    assert float_ops(tiny_variants["int8-only"]) == []
    assert any(op.startswith("CONV_2D") for op in float_ops(tiny_variants["float32"]))
    assert any(op.startswith("QUANTIZE") for op in float_ops(tiny_variants["int8-fallback"]))


def test_tf_keras_leaves_keras3_and_the_environment_alone(results, digits):
    import keras
    import tensorflow as tf

    assert "TF_USE_LEGACY_KERAS" not in os.environ
    assert tf.keras.version().startswith("3.")
    model, result, _ = results["keras3"]  # built after the tf_keras fixture imported tfmot
    assert isinstance(model, keras.Model) and result.engine == "quantbench"


def test_distillation_without_labels(tiny_model, train, digits):
    result = qat(tiny_model, train[0], epochs=1, validation=digits.x_test[:100])
    assert {"agreement", "val_agreement"} <= set(result.history[0])
    lite = LiteModel(result.content).predict(digits.x_test)
    assert evaluate.agreement(lite, tiny_model.predict(digits.x_test, verbose=0)) >= 0.9


def test_one_hot_labels_and_validation(tiny_model, train, digits):
    one_hot = np.eye(10, dtype=np.float32)[train[1]]
    result = qat(tiny_model, train[0], one_hot, epochs=1,
                 validation=(digits.x_test[:100], np.eye(10)[digits.y_test[:100]]))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(result.history[0])


def regression_model():
    import keras

    models.seed_everything(0)
    return keras_cnn(classes=1, activation=None)


def test_nan_loss_stops_with_the_epoch_and_a_fix(train):
    with pytest.raises(TrainingError, match=r"NaN or infinite in epoch 1 \(batch \d+\).*nothing was exported"
                                            r".*lower the learning rate tenfold \(learning_rate=1e\+11"):
        qat(regression_model(), train[0], epochs=2, learning_rate=1e12)


def test_nan_loss_writes_no_file(tmp_path, train, capsys):
    from quantbench.cli import main

    regression_model().save(tmp_path / "m.keras")
    np.savez(tmp_path / "train.npz", x=train[0])
    out = tmp_path / "m.tflite"
    code = main(["qat", str(tmp_path / "m.keras"), "--data", str(tmp_path / "train.npz"), "--quiet",
                 "--learning-rate", "1e12", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("quantbench: error: QAT loss became NaN or infinite in epoch 1")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "train.npz"]


def test_cli_qat_writes_the_file_and_refuses_to_overwrite(tmp_path, tiny_model, train, capsys):
    from quantbench.cli import main

    tiny_model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "train.npz", x=train[0], y=train[1])
    args = ["qat", str(tmp_path / "m.keras"), "--data", str(tmp_path / "train.npz"), "--epochs", "1",
            "-o", str(tmp_path / "m.tflite")]
    assert main(args) == 0
    assert LiteModel(tmp_path / "m.tflite").inputs[0].dtype == "int8"
    last = capsys.readouterr().err.strip().splitlines()[-1]  # the last line names what it wrote and where
    size = (tmp_path / "m.tflite").stat().st_size
    assert last.startswith(f"Wrote {tmp_path / 'm.tflite'} ({size:,} bytes, integer-only int8, int8 input and output; ")
    assert last.endswith(f"learned from the labels in {tmp_path / 'train.npz'})")
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_qat_distils_when_the_labels_fit_no_output_and_says_so(tmp_path, tiny_model, train, capsys):
    """Float targets cannot label a 10-class softmax: QAT learns from the float model instead, and says so."""
    from quantbench.cli import main

    tiny_model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "train.npz", x=train[0], y=np.linspace(0.1, 0.9, len(train[0])))
    args = ["qat", str(tmp_path / "m.keras"), "--data", str(tmp_path / "train.npz"), "--epochs", "1",
            "-o", str(tmp_path / "m.tflite")]
    assert main(args) == 0
    assert ("learned from the float model's own outputs (distillation: no labels that fit its one output))"
            in capsys.readouterr().err)


def test_cli_convert_ignores_the_calibration_files_labels(tmp_path, tiny_model, train, capsys):
    from quantbench.cli import main

    tiny_model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "calib.npz", x=train[0][:40], y=np.full(40, 0.5), note=np.zeros(3))
    assert main(["convert", str(tmp_path / "m.keras"), "-t", "int8-only", "--calib", str(tmp_path / "calib.npz"),
                 "-o", str(tmp_path / "m.tflite")]) == 0
    err = capsys.readouterr().err
    assert err == (f"quantbench: warning: {tmp_path / 'calib.npz'}: array 'note' is not read (inputs: 'x'; labels "
                   "are not used here). Fix: rename it if it holds the inputs, or drop it.\n")


def test_unsupported_layer_is_named(train):
    import keras

    models.seed_everything(0)
    model = keras_cnn(keras.layers.Reshape((36, 8)), keras.layers.Conv1D(4, 3, name="odd_conv1d"))
    with pytest.warns(UserWarning, match="QAT leaves layer 'odd_conv1d' in float: Conv1D has no int8"):
        result = qat(model, *train, epochs=1)
    assert [name for name, _ in result.float_layers] == ["odd_conv1d"]
    assert float_ops(result.content) == []  # its output is still ranged, so the converter quantizes it


def test_layer_the_converter_keeps_in_float_is_refused(train):
    import keras

    from quantbench.core.errors import ConversionError

    models.seed_everything(0)
    model = keras_cnn(keras.layers.LayerNormalization(name="ln"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConversionError, match=r"qat-int8: the converted model still computes in float"):
            qat(model, *train, epochs=1)


def op_names(content: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=content,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return [op["op_name"] for op in it._get_ops_details()]


def test_simulation_matches_the_converter(digits, train, calib):
    """The trained Keras QAT model and the exported int8 model agree: weights, ranges and outputs."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from quantbench.engines import fakequant

    models.seed_everything(2)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(6, 3, use_bias=False)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.DepthwiseConv2D(3, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
    models.train(model, digits.x_train, digits.y_train, epochs=3)
    qmodel, *_ = qat_module._fine_tune(model, *train, epochs=1, batch_size=32, validation=None, calib=None,
                                       seed=0, on_epoch=None, learning_rate=1e-4)
    content = qat_module._convert(qmodel)

    sim, lite = qmodel.predict(digits.x_test, verbose=0), LiteModel(content).predict(digits.x_test)
    # Integer kernels round each requantization once more than float does: a step or two, no more.
    steps = np.abs(sim - lite) * 256  # the int8 softmax output moves in steps of 1/256
    assert steps.mean() < 0.5 and steps.max() <= 4, (steps.mean(), steps.max())
    assert evaluate.agreement(sim, lite) >= 0.98  # flat outputs here: a one-step change flips near-ties

    it = Interpreter(model_content=content)
    it.allocate_tensors()
    conv = next(layer for layer in qmodel.layers if isinstance(layer, fakequant.QuantCompute))
    k, _ = conv._fold(conv.inner.kernel, None, (-1,))  # the BatchNormalization folded in
    k = np.asarray(k)
    scale = np.abs(k).max(axis=(0, 1, 2)) / 127
    weights = next(d for d in it.get_tensor_details() if d["dtype"] == np.int8 and len(d["shape"]) == 4
                   and len(d["quantization_parameters"]["scales"]) == 6 and d["shape"][0] == 6)
    np.testing.assert_allclose(weights["quantization_parameters"]["scales"], scale, rtol=1e-5)
    np.testing.assert_array_equal(it.get_tensor(weights["index"]).transpose(1, 2, 3, 0),
                                  np.round(k / scale).astype(np.int8))

    # Same fusions as the converter's own int8: Conv+BN+ReLU and DepthwiseConv+ReLU are one op each
    ptq = convert(model, "int8-only", calib).content
    assert op_names(content) == op_names(ptq)
    assert "RELU" not in op_names(content)

    tracker = qmodel.get_layer("image_fq")
    lo, hi = float(tracker.min.numpy()), float(tracker.max.numpy())
    s, zp = it.get_input_details()[0]["quantization"]
    assert s == pytest.approx((hi - lo) / 255, rel=1e-5) and zp == round(-lo / s) - 128


def test_run_study_adds_the_qat_row(tiny_model, digits, calib, tmp_path):
    from quantbench.inputs.data import Dataset
    from quantbench.study.pipeline import run_study

    res = run_study(tiny_model, Dataset([digits.x_test], digits.y_test, "test"), calib, tmp_path / "s",
                    StudyConfig(techniques=["int8-only"], qat_epochs=1),
                    train=(digits.x_train[:N_TRAIN], digits.y_train[:N_TRAIN]))
    row = res.variant("qat-int8")
    assert row.status == "ok" and row.engine == "qat" and (row.input_dtype, row.output_dtype) == ("int8", "int8")
    assert (tmp_path / "s" / "qat-int8.tflite").stat().st_size == row.bytes
    assert row.accuracy >= res.variant("keras").accuracy - 0.03


def test_run_study_skips_qat_without_epochs(tiny_model, digits, calib, tmp_path):
    from quantbench.inputs.data import Dataset
    from quantbench.study.pipeline import run_study

    res = run_study(tiny_model, Dataset([digits.x_test[:50]], digits.y_test[:50], "test"), calib, tmp_path / "s",
                    StudyConfig(techniques=["qat-int8"]))
    row = res.variant("qat-int8")
    assert row.status == "skipped" and "--qat-epochs N" in row.error


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, r"epochs=0, batch_size=32\. Expected both ≥ 1"),
    ({"learning_rate": 0.0}, r"learning_rate=0\.0\. Expected a positive number"),
    ({"x": np.zeros((4, 8, 8))}, r"QAT input has shape \(4, 8, 8\), expected \(N, 8, 8, 1\)"),
    ({"y": np.zeros(3, dtype=int)}, r"QAT got 400 inputs and 3 labels"),
    ({"y": np.full(400, 12)}, r"Labels range 12\.\.12 but the model has 10 outputs"),
    ({"y": np.zeros((400, 3))}, r"Labels have shape \(400, 3\); the model's output has shape \(400, 10\)"),
    ({"x": np.full((400, 8, 8, 1), np.nan)}, r"contain NaN, inf or non-numbers"),
])
def test_bad_arguments_are_refused_before_training(tiny_model, train, kwargs, message):
    args = {"x": train[0], "y": train[1], **kwargs}
    with pytest.raises(InputError, match=message):
        qat(tiny_model, args.pop("x"), args.pop("y"), epochs=args.pop("epochs", 1), **args)


def test_subclassed_model_is_refused(train):
    import keras

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat, self.dense = keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.dense(self.flat(x))

    model = Sub()
    model(train[0][:1])
    with pytest.raises(InputError, match="subclassed model .Sub.*Expected a functional or Sequential"):
        qat(model, *train, epochs=1)
