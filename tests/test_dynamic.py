"""Dynamic shapes (issue 21): a model whose input is [-1, -1, 4] (batch and time unknown) is resized to the data's
shape before allocation, for evaluation, timing, predict and bench."""
import json
import subprocess
import sys

import numpy as np
import pytest

from quantbench.engines.converter import convert
from quantbench.runtime.litert import load, quantize
from quantbench.study import pipeline as study, recommend
from quantbench.study.config import StudyConfig


@pytest.fixture(scope="module")
def sequence_model(tmp_path_factory):
    """A small 1-D CNN over sequences of any length: its stored input shape is [1, 1, 4], too short for its
    kernel of 3, so LiteRT cannot even prepare it at the stored shapes."""
    import keras

    from quantbench.inputs import models

    models.seed_everything(0)
    inputs = keras.Input((None, 4), name="audio")
    h = keras.layers.Conv1D(8, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
    folder = tmp_path_factory.mktemp("dynamic")
    model.save(folder / "m.keras")
    x = np.random.default_rng(0).normal(size=(48, 20, 4)).astype(np.float32)
    np.save(folder / "x.npy", x)
    np.savez(folder / "data.npz", x=x, y=np.argmax(model.predict(x, verbose=0), 1))
    for name in ("float32", "int8-only"):
        (folder / f"{name}.tflite").write_bytes(convert(model, name, x).content)
    return model, folder, x


def test_the_file_declares_unknown_sizes(sequence_model):
    _, folder, _ = sequence_model
    m = load(folder / "float32.tflite")
    assert m.inputs[0].shape == (-1, -1, 4) and m.resizable


@pytest.mark.parametrize("name", ["float32", "int8-only"])
def test_predict_resizes_to_each_batch_and_length(sequence_model, name):
    model, folder, x = sequence_model
    m = load(folder / f"{name}.tflite")
    tolerance = 1e-5 if name == "float32" else 0.05
    for batch in (x, x[:5, :7], x[:1, :3], np.concatenate([x] * 6)[:300]):  # 300: more than one chunk of 256
        np.testing.assert_allclose(m.predict(batch), model.predict(batch, verbose=0), atol=tolerance)


def test_a_study_evaluates_and_times_the_dynamic_model(sequence_model, tmp_path):
    _, folder, _ = sequence_model
    res = study.compare(folder / "m.keras", folder / "data.npz", out=tmp_path / "s",
                        config=StudyConfig(techniques="float32,int8-only,weight-only-int8,lq-int8", time_budget=0.2, workers=0))
    for name in ("keras", "float32", "int8-only", "weight-only-int8", "lq-int8"):  # lq-int8: calibrated at 20 steps
        v = res.variant(name)
        assert v.ok, (name, v.error)
        assert v.agreement >= 0.9 and v.latency_ms["median"] > 0, name


def test_cli_predict_and_bench_run_the_dynamic_model(sequence_model, tmp_path):
    _, folder, x = sequence_model
    run = lambda *a: subprocess.run([sys.executable, "-m", "quantbench", *a], capture_output=True, text=True,  # noqa
                                    timeout=300)
    proc = run("predict", str(folder / "int8-only.tflite"), "--input", str(folder / "x.npy"), "-o",
               str(tmp_path / "y.npy"))
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "y.npy").shape == (len(x), 3)
    proc = run("bench", str(folder / "float32.tflite"), str(folder / "int8-only.tflite"), "--input",
               str(folder / "x.npy"), "--time-budget", "0.2", "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    files = json.loads((tmp_path / "b.json").read_text())["files"]
    assert [f["input_shapes"] for f in files] == [[[20, 4]]] * 2 and all(f["latency_ms"]["median"] > 0 for f in files)


@pytest.mark.parametrize("name", ["float32", "int8-only"])
def test_tflite_micro_runs_the_dynamic_model_at_the_datas_shape(sequence_model, name):
    """TFLite Micro resizes nothing: the file's stored input is [1, 1, 4], which its kernel of 3 cannot even
    prepare; quantbench fixes a copy at one sample of the data ([1, 20, 4]) and every tensor after it."""
    pytest.importorskip("tflite_micro")
    from quantbench.measure import mcu
    from quantbench.runtime.litert import LiteModel

    model, folder, x = sequence_model
    content = (folder / f"{name}.tflite").read_bytes()
    fixed = mcu.at_data_shapes(content, [x[:8]])
    plain = LiteModel(fixed, delegates=False)
    assert [t.shape for t in plain.inputs] == [(1, 20, 4)]
    assert all(min(d["shape_signature"], default=1) > 0 for d in plain.interpreter.get_tensor_details())
    assert mcu.at_data_shapes(fixed, [x[:8]]) is fixed  # nothing left to fix
    facts = mcu.measure(folder / f"{name}.tflite", [x[:8]], reference=[model.predict(x[:8], verbose=0)])
    assert facts.runs, facts.reason
    assert facts.flash_bytes == len(content) and facts.arena_bytes > 0
    assert facts.agreement_float == 1.0 and not facts.wrong, facts.gate
    stored = mcu.run(content, [quantize(x[:8], LiteModel(content).inputs[0])])  # the file as stored: TFLM refuses it
    assert not stored.runs and stored.reason


def test_a_study_for_a_microcontroller_runs_the_dynamic_model(sequence_model, tmp_path):
    pytest.importorskip("tflite_micro")
    _, folder, _ = sequence_model
    res = study.compare(folder / "m.keras", folder / "data.npz", out=tmp_path / "s",
                        config=StudyConfig(techniques="float32,int8-only", goal=recommend.Goal(target="mcu"), time_budget=0.1, workers=0))
    for name in ("float32", "int8-only"):
        facts = res.variant(name).mcu
        assert facts["runs"], (name, facts["reason"])
        assert facts["agreement_litert"] >= 0.95 and not facts["wrong"], (name, facts)
