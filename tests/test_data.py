"""Reading and checking a user's data; every bad input has its message checked."""
import numpy as np
import pytest

from quantbench.core.errors import InputError
from quantbench.inputs import data, models


@pytest.fixture(scope="module")
def source(tiny_model):
    return models.from_keras(tiny_model)


def save(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_reads_npz_with_sparse_labels(source, digits, tmp_path):
    ds = data.load_data(save(tmp_path, x=digits.x_test, y=digits.y_test), source)
    assert len(ds) == 450 and ds.arrays()[0].dtype == np.float32
    np.testing.assert_array_equal(ds.y.labels[source.output_names[0]], digits.y_test)


def test_one_hot_labels_become_sparse(source, digits, tmp_path):
    ds = data.load_data(save(tmp_path, x=digits.x_test, y=np.eye(10)[digits.y_test]), source)
    np.testing.assert_array_equal(ds.y.labels[source.output_names[0]], digits.y_test)


def test_other_key_names(source, digits, tmp_path):
    ds = data.load_data(save(tmp_path, images=digits.x_test, labels=digits.y_test), source,
                        x_key="images", y_key="labels")
    assert len(ds) == 450 and ds.y is not None


def test_npy_is_inputs_alone(source, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits.x_test[:5])
    ds = data.load_data(tmp_path / "x.npy", source)
    assert len(ds) == 5 and ds.y is None


def test_image_folder_is_resized_and_labelled(source, tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / label / f"{i}.png")
    ds = data.load_data(tmp_path, source)
    assert ds.arrays()[0].shape == (6, 8, 8, 1) and ds.arrays()[0].dtype == np.float32
    np.testing.assert_array_equal(ds.y.labels[source.output_names[0]], [0, 0, 0, 1, 1, 1])


def test_missing_path(source, tmp_path):
    with pytest.raises(InputError, match=r"No data at .*nope\.npz \(--data\)\. Expected \.npz .* Fix: check the path"):
        data.load_data(tmp_path / "nope.npz", source)


def test_npz_without_x(source, digits, tmp_path):
    with pytest.raises(InputError, match=r"has no array 'x' \(it has \['images'\]\).*--x-key"):
        data.load_data(save(tmp_path, images=digits.x_test), source)


def test_object_array_is_never_unpickled(source, tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(InputError, match=r"object \(pickled\) array, which quantbench never unpickles"):
        data.load_data(path, source)


def test_pickled_npy(source, tmp_path):
    np.save(tmp_path / "p.npy", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"object \(pickled\) array"):
        data.load_data(tmp_path / "p.npy", source)


def test_shape_mismatch_names_the_expected_shape(source, tmp_path):
    with pytest.raises(InputError, match=r"shape \(4, 28, 28\), but the model expects \(N, 8, 8, 1\)"):
        data.load_data(save(tmp_path, x=np.zeros((4, 28, 28), np.float32)), source)


def test_zero_samples(source, tmp_path):
    with pytest.raises(InputError, match=r"has 0 samples"):
        data.load_data(save(tmp_path, x=np.zeros((0, 8, 8, 1), np.float32)), source)


def test_x_and_y_lengths_differ(source, digits, tmp_path):
    with pytest.raises(InputError, match=r"have 449 entries but the inputs have 450 samples"):
        data.load_data(save(tmp_path, x=digits.x_test, y=digits.y_test[:-1]), source)


def test_labels_out_of_range(source, digits, tmp_path):
    y = digits.y_test.copy()
    y[0] = 12
    with pytest.raises(InputError, match=r"Labels for output '\w+' in .* range from 0 to 12, but the output has 10 classes \(0\.\.9\)"):
        data.load_data(save(tmp_path, x=digits.x_test, y=y), source)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf(source, digits, tmp_path, bad):
    x = digits.x_test.copy()
    x[3, 0, 0, 0] = bad
    with pytest.raises(InputError, match=r"contains 1 NaN or Inf value\(s\)"):
        data.load_data(save(tmp_path, x=x), source, role="--calib")


def test_integer_images_for_a_float_model(source, digits, tmp_path):
    with pytest.raises(InputError, match=r"holds integers \(uint8\) but the model expects float32.*x / 255"):
        data.load_data(save(tmp_path, x=digits.x_test.astype(np.uint8)), source)


def test_empty_image_folder(source, tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(InputError, match=r"holds no images in class sub-folders"):
        data.load_data(tmp_path, source)


def test_not_a_data_file(source, tmp_path):
    (tmp_path / "x.csv").write_text("1,2,3")
    with pytest.raises(InputError, match=r"x\.csv \(--data\) is not a data file quantbench reads"):
        data.load_data(tmp_path / "x.csv", source)


def test_corrupt_npz(source, tmp_path):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match=r"x\.npz"):
        data.load_data(tmp_path / "x.npz", source)


def test_split_keeps_calibration_apart(source, tmp_path):
    x = np.arange(450 * 64, dtype=np.float32).reshape(450, 8, 8, 1)  # every sample unique
    ds = data.load_data(save(tmp_path, x=x, y=np.arange(450) % 10), source)
    calib, evaluation, info = data.split_for_calibration(ds, 100, seed=3)
    assert len(calib) == 100 and len(evaluation) == 350
    assert info["calibration"]["samples"] == 100 and info["eval_samples"] == 350
    firsts = lambda d: set(d.arrays()[0][:, 0, 0, 0].tolist())  # noqa: E731
    assert not firsts(calib) & firsts(evaluation)
    assert firsts(calib) | firsts(evaluation) == set(x[:, 0, 0, 0].tolist())
    again = data.split_for_calibration(ds, 100, seed=3)[0]
    np.testing.assert_array_equal(again.arrays()[0], calib.arrays()[0])


def test_calib_size_larger_than_data(source, digits, tmp_path):
    ds = data.load_data(save(tmp_path, x=digits.x_test[:50]), source)
    with pytest.raises(InputError, match=r"--calib-size 80 is larger than the data allows: .* has 50 samples"):
        data.split_for_calibration(ds, 80, seed=0)


# ---- Corrupt files (issue 10: found by bench/fuzz.py) -----------------------------------------------------

def test_npz_member_with_a_bad_crc(source, digits, tmp_path):
    path = save(tmp_path, x=digits.x_test[:4])
    content = bytearray(path.read_bytes())
    content[content.index(b"\x93NUMPY") + 200] ^= 0x10  # inside x's data: the zip directory is still valid
    path.write_bytes(bytes(content))
    with pytest.raises(InputError, match=r"Array 'x' in .*d\.npz cannot be read \(BadZipFile: Bad CRC-32 for file "
                                         r"'x\.npy'\): the archive is corrupt or truncated\. Expected .* Fix: "):
        data.load_data(path, source)


def test_npy_header_that_numpy_cannot_tokenize(source, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 8, 8, 1), np.float32))
    path.write_bytes(path.read_bytes().replace(b"}", b"{", 1))  # NumPy's header parser raises TokenError
    with pytest.raises(InputError, match=r"x\.npy is not a readable NumPy file \(TokenError: .*\)\. Expected .* Fix: "):
        data.load_data(path, source)


def test_file_without_numpy_or_zip_signature_is_not_called_a_pickle_array(source, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 8, 8, 1), np.float32))
    path.write_bytes(path.read_bytes()[:4])  # truncated inside the signature: NumPy would try to unpickle it
    with pytest.raises(InputError, match=r"x\.npy starts with neither NumPy's signature nor zip's, so it is corrupt, "
                                         r"truncated or a pickle \(which quantbench never unpickles\)\. Expected .* Fix: "):
        data.load_data(path, source)
