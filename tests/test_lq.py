import numpy as np
import pytest

import quantbench
from quantbench.core.errors import ConversionError, InputError
from quantbench.engines import litert_quantizer as lq, techniques
from quantbench.engines.converter import convert
from quantbench.engines.techniques import LQ, Technique

EXPECTED_IO = {
    "weight-only-int8": "float32",
    "weight-only-int4": "float32",
    "dynamic-int4": "float32",
    "lq-int8": "int8",
    "lq-int16x8": "int16",
    "lq-dynamic": "float32",
}


@pytest.fixture(scope="session")
def lq_variants(tiny_variants, calib):
    """technique name -> .tflite bytes, for every LiteRT Quantizer technique, from the float32 variant."""
    return {name: lq.quantize(tiny_variants["float32"], name, calib).content for name in techniques.LQ_TECHNIQUES}


def test_registry_lists_the_lq_techniques():
    assert list(techniques.LQ_TECHNIQUES) == list(EXPECTED_IO)
    for name in techniques.LQ_TECHNIQUES:
        t = techniques.get(name)
        assert t.engine == "litert-quantizer" and dict(t.recipe)["mode"] and lq.float_tflite_only(t)
        assert t.calibrate == (dict(t.recipe)["mode"] == "static")
        hash(t)  # frozen and hashable: recipes are plain tuples
    assert not any(lq.float_tflite_only(n) for n in techniques.CONVERTER_TECHNIQUES)


@pytest.mark.parametrize("name", techniques.LQ_TECHNIQUES)
def test_every_lq_technique_quantizes_and_predicts(name, lq_variants, tiny_model, digits):
    m = quantbench.load(lq_variants[name])
    assert (m.inputs[0].dtype, m.outputs[0].dtype) == (EXPECTED_IO[name],) * 2
    x = digits.x_test[:64]
    probs = m.predict(x)
    assert probs.shape == (64, 10) and probs.dtype == np.float32
    reference = tiny_model.predict(x, verbose=0).argmax(1)
    assert np.mean(probs.argmax(1) == reference) >= 0.9


def test_fewer_weight_bits_give_smaller_files(lq_variants, tiny_variants):
    sizes = {name: len(lq_variants[name]) for name in ("weight-only-int4", "weight-only-int8")}
    assert sizes["weight-only-int4"] < sizes["weight-only-int8"] < len(tiny_variants["float32"])


def test_predict_quantizes_int16_inputs_like_by_hand(lq_variants, digits):
    m = quantbench.load(lq_variants["lq-int16x8"])
    inp, out = m.inputs[0], m.outputs[0]
    assert inp.dtype == "int16" and inp.quantized and out.quantized
    x = digits.x_test[:32]
    by_hand = np.clip(np.round(x / inp.scale) + inp.zero_point, -32768, 32767).astype(np.int16)
    raw = m.predict(by_hand, raw=True)
    assert raw.dtype == np.int16
    np.testing.assert_array_equal(m.predict(x), (raw.astype(np.float32) - out.zero_point) * out.scale)


@pytest.fixture(scope="session")
def two_inputs():
    """A float32 .tflite with inputs 'x10' (values in [0, 1]) and 'x2' (in [0, 100]), and its Keras model."""
    import keras

    from quantbench.inputs import models

    models.seed_everything(0)
    x10 = keras.Input((4,), name="x10")  # created first, yet second in natural order
    x2 = keras.Input((4,), name="x2")
    out = keras.layers.Dense(3)(keras.layers.Concatenate()([x10, 0.01 * x2]))
    model = keras.Model([x10, x2], out)
    rng = np.random.default_rng(0)
    data = {"x10": rng.uniform(0, 1, (64, 4)).astype(np.float32),
            "x2": rng.uniform(0, 100, (64, 4)).astype(np.float32)}
    return model, convert(model, "float32").content, data


def test_calibration_feeds_each_input_by_name(two_inputs):
    model, float_bytes, data = two_inputs
    by_name = lq.quantize(float_bytes, "lq-int8", data).content
    in_order = lq.quantize(float_bytes, "lq-int8", [data["x2"], data["x10"]]).content  # runtime order
    assert by_name == in_order
    m = quantbench.load(by_name)
    assert [t.name for t in m.inputs] == ["x2", "x10"]
    scales = {t.name: t.scale for t in m.inputs}
    assert 50 < scales["x2"] / scales["x10"] < 200  # each input calibrated on its own range
    expected = model.predict([data["x10"], data["x2"]], verbose=0)
    np.testing.assert_allclose(m.predict(data), expected, atol=0.05 * np.ptp(expected))


@pytest.mark.parametrize("calib, message", [
    (None, r"Technique 'lq-int8' needs calibration samples and got none\."),
    ({"x2": np.zeros((2, 4)), "y": np.zeros((2, 4))},
     r"Calibration inputs are keyed \['x2', 'y'\] but the model's signature inputs are \['x2', 'x10'\]\."),
    ([np.zeros((2, 4))], r"Got 1 calibration array\(s\) but the model has 2 inputs \(x2, x10\)\."),
    ([np.zeros((2, 5)), np.zeros((2, 4))], r"Calibration input 'x2' has shape \(2, 5\), expected \(N, 4\)"),
    ([np.zeros((2, 4)), np.zeros((3, 4))], r"Calibration inputs have sample counts \[2, 3\]\."),
])
def test_bad_calibration_inputs_are_refused(two_inputs, calib, message):
    with pytest.raises(InputError, match=message):
        lq.quantize(two_inputs[1], "lq-int8", calib)


def test_an_already_quantized_model_is_refused(tiny_variants):
    with pytest.raises(InputError, match=r"already quantized \(it holds int32, int8 tensors\)\. Expected a float32"):
        lq.quantize(tiny_variants["int8-only"], "weight-only-int4")


def test_a_quantizer_refusal_is_one_readable_line(tiny_variants, calib):
    int4_activations = Technique("lq-int4x8", "not a LiteRT kernel", engine=LQ, calibrate=True,
                                 recipe=(("mode", "static"), ("activation_num_bits", 4), ("weight_num_bits", 8)))
    with pytest.raises(ConversionError) as err:
        lq.quantize(tiny_variants["float32"], int4_activations, calib)
    assert str(err.value) == "lq-int4x8: Activation quantization is only supported for 16 or 8 bits."


def test_engines_are_not_mixed_up(tiny_variants):
    with pytest.raises(ConversionError, match=r"^int8-only: made by TFLiteConverter from the Keras model"):
        lq.make(tiny_variants["float32"], "int8-only")
    with pytest.raises(InputError, match=r"'dynamic' is made by the converter engine, not by the LiteRT"):
        lq.quantize(tiny_variants["float32"], "dynamic")
    with pytest.raises(InputError, match=r"'weight-only-int8' is made by the litert-quantizer engine"):
        convert(None, "weight-only-int8")


def test_one_calibration_gives_every_technique_the_bytes_of_its_own(lq_variants, tiny_variants, calib):
    got = lq.quantize_family(tiny_variants["float32"], techniques.LQ_TECHNIQUES, calib)
    assert list(got) == list(techniques.LQ_TECHNIQUES)
    for name, conv in got.items():
        assert conv.content == lq_variants[name] and conv.seconds > 0


def test_a_refusal_in_the_family_stays_with_its_technique(lq_variants, tiny_variants, calib):
    int4_activations = Technique("lq-int4x8", "not a LiteRT kernel", engine=LQ, calibrate=True,
                                 recipe=(("mode", "static"), ("activation_num_bits", 4), ("weight_num_bits", 8)))
    got = lq.quantize_family(tiny_variants["float32"], [int4_activations, "lq-int8"], calib)
    assert str(got["lq-int4x8"]) == "lq-int4x8: Activation quantization is only supported for 16 or 8 bits."
    assert got["lq-int8"].content == lq_variants["lq-int8"]
