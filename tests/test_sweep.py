"""quantbench sweep: the TOML format's errors, one line each; a sweep that fails half-way resumes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from quantbench import cli
from quantbench.core.errors import InputError
from quantbench.record.results import Results
from quantbench.study import sweep

GOOD = '[models]\nm = "m.keras"\n[data]\nd = "d.npz"\n'


@pytest.fixture
def files(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")  # only existence is checked when the file is read
    (tmp_path / "d.npz").write_bytes(b"")
    return tmp_path


def _load(folder, text):
    path = folder / "sweep.toml"
    path.write_text(text)
    return sweep.load(path)


def test_format_crosses_models_data_and_calibration_sizes(files):
    (files / "n.keras").write_bytes(b"")
    (files / "t.npz").write_bytes(b"")
    s = _load(files, 'techniques = ["float16", "int8-only"]\ncalib_size = [10, 20]\nseed = 3\nout = "o"\n'
                     'target = "int-only"\ntime_budget = 5\n'
                     '[models]\nm = "m.keras"\nn = "n.keras"\n[data]\nd = "d.npz"\n'
                     'e = { data = "d.npz", calib = "t.npz" }\n')
    assert [st.name for st in s.studies] == [f"{m}-{d}-calib{c}" for m in "mn" for d in "de" for c in (10, 20)]
    first = s.studies[0]
    assert first.techniques == ("float16", "int8-only") and first.seed == 3 and first.target == "int-only"
    assert first.calib is None and s.studies[2].calib == str(files / "t.npz")
    assert s.out == files / "o" and first.time_budget == 5
    one = _load(files, GOOD)
    assert [st.name for st in one.studies] == ["m-d"] and one.studies[0].calib_size is None


BAD = [
    ("[models\n", "is not valid TOML"),
    ('colour = "red"\n' + GOOD, "field `colour` is 'red'. Expected only the fields"),
    ('[data]\nd = "d.npz"\n', "field `models` is None. Expected a table [models] with at least one entry"),
    ('[models]\n[data]\nd = "d.npz"\n', "field `models` is {}"),
    ('models = "m.keras"\n[data]\nd = "d.npz"\n', "field `models` is 'm.keras'"),
    ('[models]\nm = "m.keras"\n', "field `data` is None"),
    ('[models]\n"a b" = "m.keras"\n[data]\nd = "d.npz"\n', "field `models.a b` is 'a b'. Expected a name of letters"),
    ('[models]\nm = 3\n[data]\nd = "d.npz"\n', "field `models.m` is 3. Expected a path"),
    ('[models]\nm = "nope.keras"\n[data]\nd = "d.npz"\n', "field `models.m` names nope.keras, which does not exist"),
    ('[models]\nm = "m.keras"\n[data]\nd = 1\n', "field `data.d` is 1. Expected a path, or a table"),
    ('[models]\nm = "m.keras"\n[data]\nd = { calib = "d.npz" }\n', "Expected a table with a `data` path"),
    ('[models]\nm = "m.keras"\n[data]\nd = { data = "d.npz", x = 1 }\n', "field `data.d.x` is 1. Expected only"),
    ('[models]\nm = "m.keras"\n[data]\nd = { data = "d.npz", calib = "no.npz" }\n',
     "field `data.d.calib` names no.npz, which does not exist"),
    ('techniques = "float16"\n' + GOOD, "field `techniques` is 'float16'. Expected a non-empty list"),
    ('techniques = []\n' + GOOD, "field `techniques` is []"),
    ('techniques = ["int9"]\n' + GOOD, "field `techniques`: Unknown technique 'int9'"),
    ('calib_size = 0\n' + GOOD, "field `calib_size` is 0. Expected a whole number ≥ 1"),
    ('calib_size = [10, 2.5]\n' + GOOD, "field `calib_size` is 2.5. Expected a whole number ≥ 1"),
    ('calib_size = []\n' + GOOD, "field `calib_size` is []"),
    ('calib_size = true\n' + GOOD, "field `calib_size` is True"),
    ('seed = -1\n' + GOOD, "field `seed` is -1. Expected a whole number ≥ 0"),
    ('seed = "0"\n' + GOOD, "field `seed` is '0'"),
    ('max_accuracy_drop = -0.5\n' + GOOD, "field `max_accuracy_drop` is -0.5. Expected a number ≥ 0"),
    ('max_accuracy_drop = nan\n' + GOOD, "field `max_accuracy_drop` is nan"),
    ('target = "tpu"\n' + GOOD, "field `target` is 'tpu'. Expected one of 'cpu', 'gpu', 'int-only', 'mcu'"),
    ('optimize = "speed"\n' + GOOD, "field `optimize` is 'speed'. Expected one of 'size', 'latency'"),
    ('time_budget = 0\n' + GOOD, "field `time_budget` is 0. Expected a number > 0"),
    ('max_ram_kb = -3\n' + GOOD, "field `max_ram_kb` is -3. Expected a number > 0"),
    ('out = 5\n' + GOOD, "field `out` is 5. Expected a string"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m[:40] for _, m in BAD])
def test_every_malformed_field_is_one_line_that_names_it(files, text, message):
    with pytest.raises(InputError) as info:
        _load(files, text)
    text = str(info.value)
    assert message in text and "\n" not in text and "Fix:" in text and str(files / "sweep.toml") in text


def test_missing_sweep_file(tmp_path):
    with pytest.raises(InputError, match=r"Sweep file .*nope.toml does not exist.*Fix:"):
        sweep.load(tmp_path / "nope.toml")


def test_a_folder_that_is_not_a_sweep_is_refused(files):
    s = _load(files, GOOD)
    (files / "out").mkdir()
    (files / "out" / "thesis.tex").write_text("mine")
    with pytest.raises(InputError, match=r"not empty and holds no sweep.json.*Fix: pass --out"):
        sweep.plan(s, files / "out", force=False)


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sweep_resumes_after_a_failed_study(tmp_path, tiny_keras_path, digits, capsys):
    """Three tiny studies; the second's data does not fit the model. Run again after fixing it: the finished
    ones are kept as they are (same files, same times), the second runs, and index.html compares all three."""
    np.savez(tmp_path / "test.npz", x=digits.x_test[:120], y=digits.y_test[:120])
    np.savez(tmp_path / "train.npz", x=digits.x_train[:100], y=digits.y_train[:100])
    np.savez(tmp_path / "bad.npz", x=np.zeros((20, 5), np.float32))
    toml = tmp_path / "sweep.toml"
    toml.write_text(f'techniques = ["float16", "dynamic"]\ncalib_size = 50\n[models]\ntiny = "{tiny_keras_path}"\n'
                    '[data]\na = { data = "test.npz", calib = "train.npz" }\nb = "bad.npz"\nc = "test.npz"\n')
    out = tmp_path / "out"
    assert cli.main(["sweep", str(toml), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1 of 3 studies failed" in err and "tiny-b:" in err
    entries = json.loads((out / "sweep.json").read_text())["studies"]
    assert [e["status"] for e in entries] == ["ok", "failed", "ok"]
    assert not (out / "tiny-b").exists() and sweep.finished(out / "tiny-a") and sweep.finished(out / "tiny-c")
    rec = entries[0]["recommendation"]
    study_a = Results.load(out / "tiny-a" / "results.json")
    chosen = study_a.variant(study_a.recommendation["technique"])
    assert rec["technique"] == chosen.technique == "dynamic"  # the smaller of the two, within the 1 pp budget
    assert rec["accuracy"] == chosen.accuracy and rec["latency_ms"] == chosen.latency_ms["median"]
    assert rec["bytes"] == chosen.bytes == (out / "tiny-a" / "dynamic.tflite").stat().st_size
    assert rec["reference_accuracy"] == study_a.variant("keras").accuracy
    kept = {name: _snapshot(out / name) for name in ("tiny-a", "tiny-c")}

    np.savez(tmp_path / "bad.npz", x=digits.x_test[:120], y=digits.y_test[:120])
    assert cli.main(["sweep", str(toml), "--out", str(out), "--quiet"]) == 0
    entries = json.loads((out / "sweep.json").read_text())["studies"]
    assert [e["status"] for e in entries] == ["ok", "ok", "ok"]
    assert [bool(e.get("resumed")) for e in entries] == [True, False, True]
    assert {name: _snapshot(out / name) for name in kept} == kept
    page = (out / "index.html").read_text()
    assert all(f'href="tiny-{k}/report.html"' in page for k in "abc") and "3 of 3 studies finished" in page
    assert entries[0]["recommendation"] == rec

    toml.write_text(toml.read_text().replace("calib_size = 50", "calib_size = 60"))
    assert cli.main(["sweep", str(toml), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "tiny-a was made by an earlier run with other settings" in err and "Fix: pass --force" in err


def test_a_resumed_sweep_logs_to_mlflow_only_the_studies_not_logged_there(tmp_path, tiny_keras_path, digits, capsys,
                                                                         monkeypatch):
    """sweep.json records each study's MLflow run; run again with another study added, the kept one is not
    logged twice, and the terminal says so in one line."""
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts in ./mlruns

    np.savez(tmp_path / "test.npz", x=digits.x_test[:80], y=digits.y_test[:80])
    toml = tmp_path / "sweep.toml"
    toml.write_text(f'techniques = ["dynamic"]\ncalib_size = 20\ntime_budget = 0.2\n[models]\ntiny = '
                    f'"{tiny_keras_path}"\n[data]\na = "test.npz"\n')
    out, uri = tmp_path / "out", f"sqlite:///{tmp_path}/mlflow.db"
    assert cli.main(["sweep", str(toml), "--out", str(out), "--mlflow", uri]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2:] == [f"Logged 1 study to MLflow at {uri} (their runs: {out / 'sweep.json'})",
                        f"Wrote {out}/ (index.html, sweep.json, one folder per study)"]
    first = json.loads((out / "sweep.json").read_text())["studies"][0]["mlflow"]
    assert first["uri"] == uri
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(first["run_id"]).info.run_name == "tiny-a"

    toml.write_text(toml.read_text() + 'b = "test.npz"\n')
    assert cli.main(["sweep", str(toml), "--out", str(out), "--mlflow", uri]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2] == (f"Logged 1 study to MLflow at {uri}; 1 kept from an earlier run of this sweep was logged "
                       f"there then, not again (their runs: {out / 'sweep.json'})")
    entries = json.loads((out / "sweep.json").read_text())["studies"]
    assert entries[0]["mlflow"] == first and entries[1]["mlflow"]["run_id"] != first["run_id"]
    exp = client.get_experiment_by_name("quantbench")
    parents = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(r.info.run_name for r in parents) == ["tiny-a", "tiny-b"]
