import subprocess
import sys

import numpy as np
import pytest

import quantbench
from quantbench import techniques
from quantbench.errors import InputError
from quantbench.runtime import dequantize, quantize

EXPECTED_IO = {
    "float32": ("float32", "float32"),
    "dynamic": ("float32", "float32"),
    "int8-fallback": ("float32", "float32"),
    "int8-only": ("int8", "int8"),
    "uint8-only": ("uint8", "uint8"),
    "float16": ("float32", "float32"),
    "int16x8": ("float32", "float32"),  # the converter keeps float I/O for 16x8 unless asked
}


def test_runtime_imports_without_tensorflow():
    code = "import sys, quantbench, quantbench.runtime; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", techniques.CONVERTER_TECHNIQUES)
def test_every_technique_converts_and_predicts(name, tiny_variants, tiny_model, digits):
    m = quantbench.load(tiny_variants[name])
    assert (m.inputs[0].dtype, m.outputs[0].dtype) == EXPECTED_IO[name]
    x = digits.x_test[:64]
    probs = m.predict(x)
    assert probs.shape == (64, 10) and probs.dtype == np.float32
    reference = tiny_model.predict(x, verbose=0).argmax(1)
    assert np.mean(probs.argmax(1) == reference) >= 0.9


@pytest.mark.parametrize("name", ["int8-only", "uint8-only"])
def test_predict_quantizes_like_by_hand(name, tiny_variants, digits):
    m = quantbench.load(tiny_variants[name])
    inp, out = m.inputs[0], m.outputs[0]
    assert inp.quantized and out.quantized
    x = digits.x_test[:32]
    info = np.iinfo(inp.dtype)
    by_hand = np.clip(np.round(x / inp.scale) + inp.zero_point, info.min, info.max).astype(inp.dtype)
    raw = m.predict(by_hand, raw=True)
    assert raw.dtype == np.dtype(out.dtype)
    expected = (raw.astype(np.float32) - out.zero_point) * out.scale
    np.testing.assert_array_equal(m.predict(x), expected)


def test_quantize_rounds_and_clips():
    from quantbench.runtime import TensorInfo

    t = TensorInfo("x", 0, (-1, 3), "int8", scale=0.5, zero_point=-10)
    q = quantize(np.array([[0.0, 0.74, 1000.0]]), t)
    np.testing.assert_array_equal(q, [[-10, -9, 127]])
    np.testing.assert_allclose(dequantize(q, t), [[0.0, 0.5, 68.5]])


def test_batched_predict_equals_one_by_one(tiny_variants, digits):
    m = quantbench.load(tiny_variants["int8-only"])
    x = digits.x_test[:300]  # more than one chunk of MAX_BATCH
    batched = m.predict(x)
    singles = np.concatenate([m.predict(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(batched, singles)


def test_not_a_flatbuffer(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"this is not a model at all")
    with pytest.raises(InputError, match=r"model\.tflite is not a TFLite flatbuffer .* Fix: "):
        quantbench.load(bad)


def test_missing_tflite(tmp_path):
    with pytest.raises(InputError, match=r"No \.tflite file at .*nope\.tflite"):
        quantbench.load(tmp_path / "nope.tflite")


def test_predict_wrong_shape_names_the_expected_shape(tiny_variants):
    m = quantbench.load(tiny_variants["float32"])
    with pytest.raises(InputError, match=r"shape \(4, 9, 9, 1\), expected \(N, 8, 8, 1\)"):
        m.predict(np.zeros((4, 9, 9, 1), np.float32))


def test_inputs_and_outputs_are_readable(tiny_variants):
    m = quantbench.load(tiny_variants["int8-only"])
    text = str(m.inputs[0])
    assert "int8" in text and "scale=" in text and "zero_point=" in text
    assert m.inputs[0].shape == (-1, 8, 8, 1)


@pytest.mark.parametrize("name", ["float32", "int8-only", "uint8-only"])
def test_fast_path_equals_the_general_path(name, tiny_variants, digits):
    m = quantbench.load(tiny_variants[name])
    x = digits.x_test[:5]
    assert m._fast is not None
    np.testing.assert_array_equal(m.predict(x), m.predict([x]))         # one array vs a list of one
    np.testing.assert_array_equal(m.predict(x.astype(np.float64)), m.predict([x]))
    raw = m.prepare(x)[0]
    np.testing.assert_array_equal(m.predict(raw, raw=True), m.predict({m.inputs[0].name: raw}, raw=True))


def test_outputs_the_signature_names_but_the_subgraph_does_not_list(tmp_path):
    """The LiteRT Quantizer, on a model whose outputs also feed another op, leaves the signature naming
    tensors that get_output_details() does not hold: read them as the signature runner does."""
    import keras

    from quantbench import load, lq, models
    from quantbench.conversion import convert

    models.seed_everything(0)
    inp = keras.Input((64, 1), name="audio")
    h = keras.layers.Conv1D(4, 5, strides=2, activation="relu")(inp)
    a = keras.layers.Dense(3, activation="sigmoid", name="a")(h)
    b = keras.layers.Dense(3, activation="sigmoid", name="b")(h)
    c = keras.layers.Concatenate(name="c")([a, b, keras.layers.Dense(2)(h)])
    float_bytes = convert(keras.Model(inp, [a, b, c]), "float32").content
    x = np.random.default_rng(0).normal(size=(16, 64, 1)).astype(np.float32)
    reference = load(float_bytes).predict(x)
    for technique in ("lq-int8", "lq-int16x8"):
        content = lq.make(float_bytes, technique, x).content
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_content=content)
        named = set(it._get_full_signature_list()["serving_default"]["outputs"].values())
        assert not named <= {d["index"] for d in it.get_output_details()}  # the case itself
        m = load(content)
        assert [t.name for t in m.outputs] == ["output_0", "output_1", "output_2"]
        outs = m.predict(x)
        assert [o.shape for o in outs] == [r.shape for r in reference]
        for out, ref, t in zip(outs, reference, m.outputs):
            assert np.max(np.abs(out - ref)) < 0.05, (technique, t)
