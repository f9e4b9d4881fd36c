"""`compare`, `convert`, `inspect` and `predict` on models and data the demo did not make."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import quantbench
from quantbench.record.results import Results
from quantbench.study import pipeline as study
from quantbench.study.config import StudyConfig

FAST = ["float32", "dynamic", "int8-only", "float16", "lq-int8"]


def qb(*args):
    return subprocess.run([sys.executable, "-m", "quantbench", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def multi_io(tmp_path_factory):
    """Two named inputs, a class output and a regression output, saved as .h5 and as a SavedModel."""
    import keras

    from quantbench.inputs import models

    models.seed_everything(2)
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 6)).astype(np.float32), rng.normal(size=(300, 3)).astype(np.float32)
    y = (a[:, 0] + b[:, 0] > 0).astype(np.int64) + 2 * (a[:, 1] > 0)
    ia, ib = keras.Input((6,), name="alpha"), keras.Input((3,), name="beta")
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([ia, ib]))
    cls = keras.layers.Dense(4, activation="softmax", name="cls")(h)
    reg = keras.layers.Dense(2, name="reg")(h)
    model = keras.Model([ia, ib], [cls, reg])
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    model.fit([a, b], [y, np.zeros((300, 2))], epochs=3, verbose=0)
    folder = tmp_path_factory.mktemp("multi")
    model.save(folder / "multi.h5")
    model.export(folder / "multi_sm", verbose=False)
    np.savez(folder / "data.npz", x_alpha=a, x_beta=b, y=y)
    return folder


@pytest.mark.parametrize("name", ["multi.h5", "multi_sm"])
def test_multi_input_multi_output(multi_io, tmp_path, name):
    res = study.compare(multi_io / name, multi_io / "data.npz", out=tmp_path / "s", calib_size=100,
                        config=StudyConfig(techniques=",".join(FAST)))
    assert [v.technique for v in res.variants] == ["keras", *FAST]
    # The converter's dynamic range leaves weights under 1,024 values in float, and this model has no larger one:
    # its "dynamic" file is a float copy, a failed row (issue 21), never measured as a quantized variant.
    dynamic = res.variant("dynamic")
    assert dynamic.status == "failed" and dynamic.error.startswith("not quantized: dynamic promises int8 weights")
    res.variants.remove(dynamic)
    assert all(v.ok for v in res.variants), [v.error for v in res.variants]
    assert res.data["eval_samples"] == 200 and res.data["calibration"]["samples"] == 100
    names = ["cls", "reg"] if name == "multi.h5" else ["output_0", "output_1"]  # the model's own names
    assert res.data["labelled_outputs"] == {names[0]: "classes"}
    for v in res.variants:
        assert [f["output"] for f in v.fidelity] == names
        assert v.fidelity[0]["agreement"] is not None and v.fidelity[1]["agreement"] is None  # regression output
        assert v.agreement >= 0.9
        assert v.fidelity[1]["sqnr_db"] is None if v.technique == "keras" else v.fidelity[1]["sqnr_db"] > 10
    assert res.variant("keras").fidelity[0]["max_abs_err"] == 0.0  # identical: SQNR infinite, stored as None
    assert res.variant("float32").accuracy == pytest.approx(res.variant("keras").accuracy, abs=0.005)


def test_unlabelled_data_reports_fidelity(tiny_keras_path, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits.x_test)
    res = study.compare(tiny_keras_path, tmp_path / "x.npy", out=tmp_path / "s",
                        config=StudyConfig(techniques="float32,int8-only"))
    for v in res.variants:
        assert v.accuracy is None and v.agreement is not None
    assert res.variant("int8-only").fidelity[0]["sqnr_db"] > 0 and res.variant("int8-only").kl is not None


def digits_npz_arrays(digits_npz):
    with np.load(digits_npz[0]) as d:
        return d["x"], d["y"]


def test_top5_when_more_than_5_classes(tiny_keras_path, digits_npz, tmp_path):
    res = study.compare(tiny_keras_path, digits_npz[0], digits_npz[1], tmp_path / "s",
                        StudyConfig(techniques="float32"), calib_size=50)
    v = res.variant("float32")
    assert res.data["eval_samples"] == 450
    # counted outside quantbench: the label among the five best scores of a plain LiteRT run, and the best alone
    import plain_litert

    scores = plain_litert.predict(tmp_path / "s" / v.path, digits_npz_arrays(digits_npz)[0])
    y = digits_npz_arrays(digits_npz)[1]
    five = np.argsort(-scores, axis=1)[:, :5]
    assert v.top5 == np.mean(np.any(five == y[:, None], axis=1)) and v.accuracy == np.mean(scores.argmax(1) == y)
    assert v.top5 > v.accuracy  # this model's top-5 differs from its top-1: the figure is not top-1 again


def test_a_refused_technique_is_a_failed_row_with_the_reason(tmp_path, digits):
    import keras

    inputs = keras.Input((6,))
    h = keras.layers.Lambda(keras.ops.erf)(keras.layers.Dense(6)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    res = quantbench.run_study(model, x, x[:10], tmp_path / "s", StudyConfig(techniques=["float32", "int8-only"]))
    assert res.variant("keras").ok
    for name in ("float32", "int8-only"):
        v = res.variant(name)
        assert v.status == "failed"
        assert v.error == f"{name}: 'tf.Erf' op is neither a custom op nor a flex op (TF Select ops: Erf)"
    assert (tmp_path / "s" / "results.json").exists()


def test_float_tflite_as_model(tmp_path, tiny_variants, digits_npz):
    path = tmp_path / "float.tflite"
    path.write_bytes(tiny_variants["float32"])
    res = study.compare(path, digits_npz[0], out=tmp_path / "s",
                        config=StudyConfig(techniques="int8-only,weight-only-int8,lq-int8"))
    assert res.variants[0].technique == "float32" and res.variants[0].engine == "input"
    skipped = res.variant("int8-only")
    assert skipped.status == "skipped" and "needs the TensorFlow model" in skipped.error
    assert res.variant("weight-only-int8").ok and res.variant("lq-int8").ok
    assert res.variant("lq-int8").input_dtype == "int8"


def test_cli_convert_inspect_predict(tiny_keras_path, digits_npz, tmp_path):
    out = tmp_path / "m.tflite"
    proc = qb("convert", str(tiny_keras_path), "-t", "int8-only", "--calib", str(digits_npz[1]), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert quantbench.load(out).inputs[0].dtype == "int8"
    last = (proc.stdout + proc.stderr).strip().splitlines()[-1]  # the last line names what it wrote and where
    assert re.fullmatch(rf"Wrote {re.escape(str(out))} \({out.stat().st_size:,} bytes, int8-only, \d+\.\d\d s\)", last)

    proc = qb("inspect", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "int8 scale=" in proc.stdout and "CONV_2D" in proc.stdout
    assert "float compute ops: none" in proc.stdout

    x = np.load(digits_npz[0])["x"][:5]
    np.save(tmp_path / "x.npy", x)
    proc = qb("predict", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy"))
    assert proc.returncode == 0, proc.stderr
    assert "class " in proc.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), quantbench.load(out).predict(x))

    again = qb("convert", str(tiny_keras_path), "-t", "float32", "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_cli_compare_json(tiny_keras_path, digits_npz, tmp_path):
    proc = qb("compare", str(tiny_keras_path), "--data", str(digits_npz[0]), "--techniques", "float32,dynamic",
              "--out", str(tmp_path / "s"), "--json", "--time-budget", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads((tmp_path / "s" / "results.json").read_text())


@pytest.mark.parametrize("args, message", [
    (["inspect", "{tmp}/nope.tflite"], "No .tflite file at"),
    (["inspect", "{bad}"], "is not a TFLite flatbuffer"),
    (["predict", "{tflite}", "--input", "{wrong}"], "shape (3, 5), expected (N, 8, 8, 1)"),
    (["compare", "{tmp}/none.keras", "--data", "{data}"], "No model at"),
    (["compare", "{keras}", "--data", "{data}", "--techniques", "int7"], "Unknown technique 'int7'"),
    (["convert", "{keras}", "-t", "int8-only", "-o", "{tmp}/o.tflite"], "needs calibration data"),
    (["compare", "{keras}", "--data", "{data}", "--calib-size", "9999"], "--calib-size 9999 is larger"),
])
def test_cli_bad_input_is_one_line_exit_2(args, message, tmp_path, tiny_keras_path, digits_npz, tiny_variants):
    (tmp_path / "bad.tflite").write_bytes(b"garbage")
    (tmp_path / "f.tflite").write_bytes(tiny_variants["float32"])
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), np.float32))
    fill = {"tmp": tmp_path, "bad": tmp_path / "bad.tflite", "tflite": tmp_path / "f.tflite",
            "wrong": tmp_path / "wrong.npy", "keras": tiny_keras_path, "data": digits_npz[0]}
    proc = qb(*[a.format(**fill) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.tflite").exists()


def test_calib_file_without_calib_size_draws_up_to_200(tiny_keras_path, digits_npz, tmp_path):
    res = study.compare(tiny_keras_path, digits_npz[0], digits_npz[1], tmp_path / "s",
                        StudyConfig(techniques=("float32",)))
    assert res.data["calibration"]["samples"] == 200  # not the whole 1347-sample file
    assert [v.technique for v in res.variants] == ["keras", "float32"]


def test_a_throughput_batch_lowered_for_memory_is_a_choice_said():
    from quantbench.study.pipeline import _lowered_batch

    assert _lowered_batch(32, 32) == [] and _lowered_batch(64, 32) == []
    assert _lowered_batch(8, 32) == [{"choice": "throughput_batch", "text": "Throughput was measured at batch 8, not "
                                      "at the 32 of --batch: a larger batch would not fit the memory an interpreter "
                                      "may hold."}]
