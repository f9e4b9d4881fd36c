import pytest

from quantbench.errors import InputError
from quantbench.files import staged_dir, write_file


def test_existing_folder_is_refused_without_force(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match=r"already exists and is not empty.*--force"):
        with staged_dir(out, force=False):
            pass
    assert (out / "keep.txt").read_text() == "mine"


def test_failure_leaves_nothing_behind(tmp_path):
    out = tmp_path / "study"
    with pytest.raises(RuntimeError):
        with staged_dir(out, force=False) as tmp:
            (tmp / "half.tflite").write_bytes(b"x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_force_replaces(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "old").write_text("old")
    with staged_dir(out, force=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"]


def test_write_file_refuses_existing(tmp_path):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"user's")
    with pytest.raises(InputError, match=r"m\.tflite already exists.*--force"):
        write_file(target, b"new")
    assert target.read_bytes() == b"user's"
    write_file(target, b"new", force=True)
    assert target.read_bytes() == b"new"
