import subprocess
import sys


def qb(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "quantbench", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_commands():
    proc = qb("--help")
    assert proc.returncode == 0
    assert "demo" in proc.stdout


def test_unknown_technique_is_one_line_and_exit_2(tmp_path):
    proc = qb("demo", "--out", str(tmp_path / "x"), "--techniques", "float32,int7")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        proc.stderr.strip()]  # exactly one line
    assert "Unknown technique 'int7'. Expected one of: float32" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_existing_output_folder_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    proc = qb("demo", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "already exists and is not empty" in proc.stderr and "--force" in proc.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_calib_size_larger_than_data(tmp_path):
    proc = qb("demo", "--out", str(tmp_path / "x"), "--calib-size", "5000")
    assert proc.returncode == 2
    assert "--calib-size 5000 is larger than the 1347 samples" in proc.stderr


def test_usage_error_exits_2():
    proc = qb("demo", "--epochs", "zero")
    assert proc.returncode == 2


def test_an_interrupted_command_leaves_no_signal_pending_for_the_next_call(monkeypatch, capsys):
    import signal

    from quantbench import cli, errors

    monkeypatch.setattr(cli, "app", lambda **kw: errors.interrupt(signal.SIGTERM))
    assert cli.main(["demo"]) == 143
    assert capsys.readouterr().err == "quantbench: interrupted (SIGTERM); unfinished output removed\n"
    assert errors.pending is None  # else the next in-process conversion that fails would re-raise it


def test_every_help_reads_as_written_and_version_prints(capsys, monkeypatch):
    """Rich markup must not eat bracketed words ([ray], [models]) nor leave empty fragments in any help."""
    import re

    from quantbench.cli import app, main

    monkeypatch.setenv("COLUMNS", "240")
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert {"demo", "compare", "sweep", "convert", "qat", "inspect", "predict", "bench", "report"} <= set(names)
    for name in names:
        assert main([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert not re.search(r": ?,|, ,|\(\)|''", text), (name, text)
        if name in ("demo", "compare", "sweep"):
            assert "pip install 'quantbench[ray]'" in text, name
    assert main(["sweep", "--help"]) == 0
    assert "The sweep: [models], [data] and settings" in capsys.readouterr().out
    assert main(["--version"]) == 0
    from quantbench import __version__
    assert capsys.readouterr().out == f"quantbench {__version__}\n"


def test_compare_ends_with_the_folder_it_wrote(tiny_keras_path, digits_npz, tmp_path, capsys):
    from quantbench.cli import main

    out = tmp_path / "s"
    assert main(["compare", str(tiny_keras_path), "--data", str(digits_npz[0]), "--techniques", "float32,dynamic",
                 "--out", str(out), "--time-budget", "0.2"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"Wrote {out}/ (report.html, report.md, results.json, one .tflite per technique, "
                       "recommended.tflite)")


def test_an_error_raised_while_a_signal_unwinds_is_the_interrupt(tmp_path, monkeypatch, capsys):
    """A library's cleanup can fail on the state an interrupt left and replace it (a TypeError inside TensorFlow,
    once, under SIGTERM): the signal is the cause, so the exit is 143 and says interrupted, not internal error."""
    import signal as sig

    from quantbench import errors, study
    from quantbench.cli import main

    def broken(**kwargs):
        errors.pending = errors.Interrupted(sig.SIGTERM)
        raise TypeError("int() argument must be a string, a bytes-like object or a real number, not 'TensorShape'")

    monkeypatch.setattr(study, "demo", broken)
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 143
    assert capsys.readouterr().err == "quantbench: interrupted (SIGTERM); unfinished output removed\n"
    assert errors.pending is None
    monkeypatch.setattr(study, "demo", lambda **kwargs: (_ for _ in ()).throw(TypeError("a bug")))
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 1  # without a signal: still a bug
    assert "internal error: TypeError: a bug" in capsys.readouterr().err
