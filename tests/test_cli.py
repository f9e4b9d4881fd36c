import pytest
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

    from quantbench import cli
    from quantbench.core import errors

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
        if name in ("demo", "compare", "sweep"):  # the panel may wrap it: read across lines and borders
            assert "pip install 'quantbench[ray]'" in " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split()), name
    assert main(["sweep", "--help"]) == 0
    text = capsys.readouterr().out
    assert "The sweep: [models], [data] and settings" in text
    # sweep honours --mlflow, and says what a resumed sweep skips
    assert "sweep.json records as logged to the same URI by an earlier run is not logged again" in " ".join(
        re.sub(r"[│╭╮╰╯─]", " ", text).split())
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
    # without --calib the evaluation set shrinks: one line on the terminal, a field in results.json (issue 24)
    said = (f"Evaluated 338 of the 450 samples in {digits_npz[0]}: 112 were held out for calibration (a seeded split, "
            "seed 0). Pass --calib FILE to evaluate all 450.")
    assert err[-2] == said
    from quantbench.record.results import Results

    saved = Results.load(out / "results.json")
    assert saved.choices == [{"choice": "evaluation_split", "text": said}] and saved.data["eval_samples"] == 338
    assert main(["compare", str(tiny_keras_path), "--data", str(digits_npz[0]), "--calib", str(digits_npz[1]),
                 "--techniques", "float32", "--out", str(tmp_path / "c"), "--time-budget", "0.2"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    said = (f"Calibrated on 200 of the 1347 samples in {digits_npz[1]} (a seeded draw, seed 0); --calib-size sets "
            "how many.")
    assert err[-2] == said and Results.load(tmp_path / "c" / "results.json").choices[0]["text"] == said


def test_an_error_raised_while_a_signal_unwinds_is_the_interrupt(tmp_path, monkeypatch, capsys):
    """A library's cleanup can fail on the state an interrupt left and replace it (a TypeError inside TensorFlow,
    once, under SIGTERM): the signal is the cause, so the exit is 143 and says interrupted, not internal error."""
    import signal as sig

    from quantbench.cli import main
    from quantbench.core import errors
    from quantbench.study import pipeline as study

    def broken(*args, **kwargs):
        errors.pending = errors.Interrupted(sig.SIGTERM)
        raise TypeError("int() argument must be a string, a bytes-like object or a real number, not 'TensorShape'")

    monkeypatch.setattr(study, "demo", broken)
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 143
    assert capsys.readouterr().err == "quantbench: interrupted (SIGTERM); unfinished output removed\n"
    assert errors.pending is None
    monkeypatch.setattr(study, "demo", lambda *args, **kwargs: (_ for _ in ()).throw(TypeError("a bug")))
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 1  # without a signal: still a bug
    assert "internal error: TypeError: a bug" in capsys.readouterr().err


def _words(text: str) -> str:
    """Help or a table as the words it shows: box drawing out, lines joined."""
    import re

    return " " + " ".join(re.sub(r"[│╭╮╰╯─┃━]", " ", text).split()) + " "


def test_every_option_help_is_shown_whole_at_80_and_100_columns(capsys, monkeypatch):
    """Each option's help, as written (markup escapes aside), appears word for word in --help on one line's width
    (240 columns), and every one of its words whole at the widths a terminal has (80, 100): nothing eaten as
    markup, no word broken, no empty fragment."""
    import re

    import typer.main

    from quantbench.cli import app, main

    group = typer.main.get_command(app)
    for width in (240, 100, 80):
        monkeypatch.setenv("COLUMNS", str(width))
        for name, command in group.commands.items():
            assert main([name, "--help"]) == 0
            out = capsys.readouterr().out
            assert max(map(len, out.splitlines())) <= width
            shown, tokens = _words(out), set(_words(out).split())
            for param in command.params:
                written = " ".join((getattr(param, "help", None) or "").replace("\\[", "[").split())
                assert written, (name, param.name, "has no help")
                if width == 240:
                    assert f" {written} " in shown, (name, param.name)
                assert set(written.split()) <= tokens, (name, param.name, width, set(written.split()) - tokens)
            assert not re.search(r": ?,|, ,|\(\)|''|\\\[| \. ", shown), (name, shown)  # ' . ': a word eaten


def test_unknown_technique_lists_every_known_one_and_where_they_are_described(tiny_keras_path, tmp_path, capsys):
    from quantbench.cli import main
    from quantbench.engines.techniques import names

    assert main(["convert", str(tiny_keras_path), "-t", "int8", "-o", str(tmp_path / "o.tflite")]) == 2
    err = capsys.readouterr().err
    assert err == (f"quantbench: error: Unknown technique 'int8'. Expected one of: {', '.join(names())}. Fix: pick a "
                   "name from that list (`quantbench techniques` says what each one does).\n")


@pytest.mark.parametrize("width", [80, 100])
def test_techniques_marks_the_default_set_per_target_and_breaks_no_word(width, monkeypatch, capsys):
    from quantbench.cli import main
    from quantbench.engines.techniques import DEFAULT_TECHNIQUES, get, names
    from quantbench.study.recommend import TARGETS, defaults

    monkeypatch.setenv("COLUMNS", str(width))
    assert main(["techniques"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(map(len, lines)) <= width
    head = next(i for i, ln in enumerate(lines) if ln.startswith("technique"))
    columns = {t: lines[head].index(t.split("-")[0] if t != "int-only" else "only") for t in TARGETS}
    for name in names():
        row = next(ln for ln in lines if ln.split()[:1] == [name])
        marked = {t for t, at in columns.items() if "✓" in row[at - 1:at + 4]}
        assert marked == {t for t in TARGETS if name in defaults(t)}, (name, row)
        assert " " + " ".join(get(name).summary.split()) + " " in _words(out), name  # every word whole
    assert defaults("cpu") == defaults("mcu") == list(DEFAULT_TECHNIQUES)
    assert "int8-only" in defaults("int-only") and "dynamic" not in defaults("int-only")
    assert "float16" in defaults("gpu") and "dynamic" not in defaults("gpu")
    words = _words(out)
    assert " ✓: `compare` and `demo` run it by default for that --target; --techniques a,b picks others, 'all' " \
           "every one the target allows. " in words
    assert " qat-int8: added by --qat-epochs N (fine-tunes first). " in words
