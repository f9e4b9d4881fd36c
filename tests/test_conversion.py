"""conversion.convert_family: the int8 family from one calibration gives the files `convert` gives."""
from __future__ import annotations

import numpy as np
import pytest

from quantbench.core.errors import ConversionError, InputError
from quantbench.engines import techniques
from quantbench.engines.converter import Conversion, convert, convert_family, shares_calibration

FAMILY = [n for n in techniques.names() if shares_calibration(n)]


def test_the_family_is_the_converters_calibrated_int8_and_16x8_techniques():
    assert FAMILY == ["int8-fallback", "int8-only", "uint8-only", "int16x8"]


@pytest.fixture(scope="module")
def family(tiny_model, calib):
    return convert_family(tiny_model, techniques.CONVERTER_TECHNIQUES, calib)


@pytest.mark.parametrize("name", techniques.CONVERTER_TECHNIQUES)
def test_each_file_is_byte_identical_to_converts(family, tiny_variants, name):
    conv = family[name]
    assert isinstance(conv, Conversion) and conv.technique == name and conv.seconds > 0
    assert conv.content == tiny_variants[name]


def test_results_come_in_the_order_asked(family):
    assert list(family) == list(techniques.CONVERTER_TECHNIQUES)


@pytest.fixture(scope="module")
def sine_model():
    """Dense, sin, Dense: int8 keeps SIN in float, TF's 16x8 quantizer refuses it."""
    import keras

    from quantbench.inputs import models

    models.seed_everything(2)
    inputs = keras.Input((8,), name="x")
    h = keras.layers.Lambda(keras.ops.sin)(keras.layers.Dense(8)(inputs))
    return keras.Model(inputs, keras.layers.Dense(4)(h))


def test_a_refusal_stays_with_its_technique(sine_model):
    calib = np.random.default_rng(0).uniform(0.1, 1, (32, 8)).astype(np.float32)
    got = convert_family(sine_model, FAMILY, calib)
    assert isinstance(got["int16x8"], ConversionError)
    assert str(got["int16x8"]) == "int16x8: Quantization to 16x8-bit not yet supported for op: 'SIN'."
    with pytest.raises(ConversionError) as usual:
        convert(sine_model, "int16x8", calib)
    assert str(got["int16x8"]) == str(usual.value)
    for name in ("int8-fallback", "int8-only", "uint8-only"):
        assert got[name].content == convert(sine_model, name, calib).content


def test_a_refused_calibration_fails_each_calibrated_technique_with_its_own_reason(tiny_model, calib, tiny_variants):
    bad = calib[..., 0]  # (n, 8, 8): the converter's calibration cannot feed a 4-D input
    got = convert_family(tiny_model, ["float32", "int8-only", "int16x8"], bad)
    assert got["float32"].content == tiny_variants["float32"]
    for name in ("int8-only", "int16x8"):
        assert isinstance(got[name], ConversionError)
        assert str(got[name]).startswith(f"{name}: ") and "CONV_2D" in str(got[name])


def test_missing_calibration_is_an_input_error(tiny_model):
    with pytest.raises(InputError, match=r"Technique 'int8-fallback' needs calibration samples and got none\. "
                                         r".*Fix: pass --calib FILE"):
        convert_family(tiny_model, ["int8-fallback", "int8-only"])


def test_another_engines_technique_is_an_input_error(tiny_model, calib):
    with pytest.raises(InputError, match=r"Technique 'lq-int8' is made by the litert-quantizer engine, not by "
                                         r"TFLiteConverter\. Fix: pass converter techniques only"):
        convert_family(tiny_model, ["int8-only", "lq-int8"], calib)


def test_calibrating_with_16x8_settings_first_gives_the_same_files(tiny_model, calib, tiny_variants):
    got = convert_family(tiny_model, list(reversed(FAMILY)), calib)  # int16x8's converter calibrates
    assert {n: c.content for n, c in got.items()} == {n: tiny_variants[n] for n in FAMILY}


# ---- the Keras model exported once for the converter (models.Source.export_for_converter) ---------

@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    from quantbench.inputs import models

    source = models.from_keras(tiny_model)
    folder = tmp_path_factory.mktemp("export") / "savedmodel"
    assert source.export_for_converter(folder) and (folder / "saved_model.pb").is_file()
    assert not folder.with_name("savedmodel.partial").exists()
    source.exported = folder
    return source


@pytest.mark.parametrize("name", techniques.CONVERTER_TECHNIQUES)
def test_converting_from_the_export_gives_from_keras_models_bytes(exported, calib, tiny_variants, name):
    assert convert(exported, name, calib).content == tiny_variants[name]


def test_the_family_from_the_export_gives_the_same_bytes(exported, calib, tiny_variants):
    for name, conv in convert_family(exported, FAMILY, calib).items():
        assert conv.content == tiny_variants[name]


def test_a_two_input_model_exports_with_its_inputs_in_order(tmp_path):
    import keras

    from quantbench.inputs import models

    models.seed_everything(3)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    source = models.from_keras(model)
    usual = source.converter().convert()
    assert source.export_for_converter(tmp_path / "sm")
    source.exported = tmp_path / "sm"
    assert source.converter().convert() == usual


def test_a_model_that_is_not_keras_is_not_exported(tiny_variants, tmp_path):
    from quantbench.inputs import models

    (tmp_path / "f.tflite").write_bytes(tiny_variants["float32"])
    source = models.load_model(tmp_path / "f.tflite")
    assert not source.export_for_converter(tmp_path / "sm")
    assert not (tmp_path / "sm").exists() and not (tmp_path / "sm.partial").exists()


def test_a_removed_export_is_not_used(tiny_model, calib, tiny_variants, tmp_path):
    import shutil

    from quantbench.inputs import models

    source = models.from_keras(tiny_model)
    assert source.export_for_converter(tmp_path / "sm")
    source.exported = tmp_path / "sm"
    shutil.rmtree(tmp_path / "sm")  # the study that made it is over: its work folder is gone
    assert convert(source, "float32").content == tiny_variants["float32"]
