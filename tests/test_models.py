"""Loading a user's model: formats, and every bad file with its message."""
import zipfile

import numpy as np
import pytest

from quantbench.core.errors import InputError
from quantbench.inputs import models


def test_loads_keras(tiny_keras_path):
    src = models.load_model(tiny_keras_path)
    assert src.kind == "keras" and src.input_shapes == [(-1, 8, 8, 1)] and src.output_shapes == [(-1, 10)]
    assert src.size_bytes == tiny_keras_path.stat().st_size


def test_loads_saved_model_and_h5(tiny_model, tmp_path, digits):
    tiny_model.export(tmp_path / "sm", verbose=False)
    tiny_model.save(tmp_path / "m.h5")
    x = digits.x_test[:16]
    want = tiny_model.predict(x, verbose=0)
    for path, kind in ((tmp_path / "sm", "saved_model"), (tmp_path / "m.h5", "h5")):
        src = models.load_model(path)
        assert src.kind == kind
        np.testing.assert_allclose(src.predict([x])[0], want, atol=1e-5)


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match=r"No model at .*missing\.keras\. Expected a Keras \.keras or \.h5 file"):
        models.load_model(tmp_path / "missing.keras")


def test_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt is not a model quantbench can read \(suffix '\.txt'\)"):
        models.load_model(tmp_path / "notes.txt")


def test_folder_without_saved_model(tmp_path):
    with pytest.raises(InputError, match=r"folder without saved_model\.pb"):
        models.load_model(tmp_path)


def test_truncated_keras_zip(tiny_keras_path, tmp_path):
    bad = tmp_path / "cut.keras"
    bad.write_bytes(tiny_keras_path.read_bytes()[:500])
    with pytest.raises(InputError, match=r"cut\.keras is not a valid \.keras archive \(corrupt or truncated zip\)"):
        models.load_model(bad)


def test_keras_zip_without_a_model(tmp_path):
    bad = tmp_path / "empty.keras"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("readme.txt", "nothing here")
    with pytest.raises(InputError, match=r"Keras could not load .*empty\.keras"):
        models.load_model(bad)


def test_h5_with_weights_only(tiny_model, tmp_path):
    path = tmp_path / "tiny.weights.h5"
    tiny_model.save_weights(path)
    with pytest.raises(InputError, match=r"holds weights only \(no model_config attribute\).*load_weights"):
        models.load_model(path)


def test_not_an_h5(tmp_path):
    (tmp_path / "fake.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"fake\.h5 is not an HDF5 file"):
        models.load_model(tmp_path / "fake.h5")


@pytest.fixture(scope="module")
def lambda_model():
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_needs_unsafe(lambda_model, tmp_path, suffix):
    path = tmp_path / f"lam{suffix}"
    lambda_model.save(path)
    with pytest.raises(InputError, match=r"Lambda layer .* Fix: pass --unsafe if you trust this file"):
        models.load_model(path)
    src = models.load_model(path, unsafe=True)
    np.testing.assert_allclose(src.predict([np.ones((2, 4), np.float32)])[0], 2.0)


# ---- HDF5 files libhdf5 cannot read to the end (issue 10: found by bench/fuzz.py) -----------------------

DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_h5_that_hdf5_loops_on_is_refused(monkeypatch):
    # fuzz case h5-228 (bits spliced into a tiny model's .h5): reading its model_config never returned
    monkeypatch.setattr(models, "H5_READ_SECONDS", 2)
    with pytest.raises(InputError, match=r"Reading .*hdf5-loops\.h5 with HDF5 did not finish in 2 s: the file is "
                                         r"corrupt \(libhdf5 loops on some damaged files\)\. Expected .* Fix: "):
        models.load_model(DATA / "hdf5-loops.h5")


def test_h5_that_crashes_hdf5_is_refused(tiny_model, tmp_path, monkeypatch):
    path = tmp_path / "m.h5"
    tiny_model.save(path)
    monkeypatch.setattr(models, "_H5_READ_ALL", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(InputError, match=r"HDF5 crashed reading .*m\.h5 \(SIGSEGV\): the file is corrupt\. .* Fix: "):
        models.load_model(path)


def test_h5_whose_model_config_h5py_cannot_open_is_refused():
    # fuzz case h5-257: h5py raised KeyError ("unable to determine object type") reading the attribute
    with pytest.raises(InputError, match=r"HDF5 cannot read the model_config of .*hdf5-bad-object\.h5 \(KeyError: .*"
                                         r"unable to determine object type.*\): the file is corrupt\. Expected .* Fix: "):
        models.load_model(DATA / "hdf5-bad-object.h5")
