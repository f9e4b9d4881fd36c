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
