import pytest

from quantbench.core.errors import InputError
from pathlib import Path

from quantbench.core.files import check_new_dir, staged_dir, write_file


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


def test_force_replaces_a_study_quantbench_wrote(tmp_path):
    out = tmp_path / "study"
    with staged_dir(out, force=False) as tmp:
        (tmp / "old").write_text("old")
    with staged_dir(out, force=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [".quantbench", "new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]  # no staging or old copy left beside it


def test_write_file_refuses_existing(tmp_path):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"user's")
    with pytest.raises(InputError, match=r"m\.tflite already exists.*--force"):
        write_file(target, b"new")
    assert target.read_bytes() == b"user's"
    write_file(target, b"new", force=True)
    assert target.read_bytes() == b"new"


def _user_folder(root):
    """A folder holding someone's work: a file and a sub-folder with a file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "keep.txt").write_bytes(b"my notes\x00\xff")
    (root / "sub").mkdir()
    (root / "sub" / "data.csv").write_bytes(b"1,2,3\n")
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _unchanged(before):
    return all(p.is_file() and p.read_bytes() == content for p, content in before.items())


@pytest.mark.parametrize("where, why", [
    (".", "is the current folder"), ("..", "is a parent of the current folder"),
    ("HOME", "is your home folder"), ("/", "is the root folder")])
def test_force_never_replaces_folders_that_hold_other_work(tmp_path, monkeypatch, where, why):
    work = tmp_path / "home" / "project"
    before = _user_folder(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home" if where == "HOME" else tmp_path / "elsewhere"))
    monkeypatch.chdir(work if where != "HOME" else tmp_path)
    out = tmp_path / "home" if where == "HOME" else Path(where)
    with pytest.raises(InputError, match=rf"Output folder .* {why}; .*--force never replaces a folder that "
                                         r"holds other work\. Fix: pass --out with a new folder"):
        check_new_dir(out, force=True)
    assert _unchanged(before)


def test_force_refuses_a_folder_with_files_quantbench_did_not_write(tmp_path):
    before = _user_folder(tmp_path / "mine")
    with pytest.raises(InputError, match=r"holds files quantbench did not write \(keep.txt, sub/data.csv\), so "
                                         r"--force will not replace it"):
        with staged_dir(tmp_path / "mine", force=True) as tmp:
            (tmp / "results.json").write_text("{}")
    assert _unchanged(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_force_refuses_a_study_folder_the_user_added_to_or_changed(tmp_path):
    out = tmp_path / "study"
    with staged_dir(out, force=False) as tmp:
        (tmp / "report.md").write_text("quantbench's")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"did not write \(notes.txt\)"):
        check_new_dir(out, force=True)
    (out / "notes.txt").unlink()
    (out / "report.md").write_text("edited by the user, longer")
    with pytest.raises(InputError, match=r"did not write \(report.md\)"):
        check_new_dir(out, force=True)
    assert (out / "report.md").read_text() == "edited by the user, longer"


def test_a_folder_is_never_replaced_by_a_file(tmp_path):
    before = _user_folder(tmp_path / "out.tflite")
    with pytest.raises(InputError, match=r"out.tflite is a folder. Expected a file path; a folder is never replaced"):
        write_file(tmp_path / "out.tflite", b"x", force=True)
    assert _unchanged(before)


def test_someone_adding_work_while_the_study_runs_is_kept(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    with pytest.raises(InputError, match="already exists and is not empty"):
        with staged_dir(out, force=False) as tmp:
            (tmp / "results.json").write_text("{}")
            (out / "keep.txt").write_text("mine")  # arrived during the study
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_signals_held_deliver_a_signal_from_another_thread_after_the_block():
    import os
    import signal
    import threading

    from quantbench.core import errors
    from quantbench.core.files import signals_held

    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with signals_held():
            # sent from another thread, as a kernel may deliver a Ctrl-C to any of TensorFlow's threads
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT))
            sender.start()
            sender.join()
            for _ in range(1000):  # bytecode boundaries, where Python runs handlers
                pass
            assert seen == []
        assert seen == [signal.SIGINT]
        signal.signal(signal.SIGINT, errors.interrupt)
        with pytest.raises(errors.Interrupted, match="SIGINT"):
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
        errors.pending = None


def test_an_interrupt_something_swallowed_still_stops_the_commit(tmp_path):
    import signal

    from quantbench.core import errors

    out = tmp_path / "study"
    try:
        with pytest.raises(errors.Interrupted):
            with staged_dir(out, force=False) as tmp:
                (tmp / "results.json").write_text("{}")
                try:
                    errors.interrupt(signal.SIGTERM)
                except errors.Interrupted:
                    pass  # what Python does with an exception raised in a __del__
        assert not out.exists() and list(tmp_path.iterdir()) == []
        with staged_dir(out, force=False) as tmp:  # an interrupt from before this study does not stop it
            (tmp / "results.json").write_text("{}")
        assert (out / "results.json").exists()
    finally:
        errors.pending = None
