"""`quantbench report A B`: two hand-made studies side by side; no TensorFlow, no timing."""
import dataclasses

import pytest

from quantbench.cli import main
from quantbench.record.results import Results, Variant
from quantbench.report import comparison


def variant(name, acc, ms, spread=0.02, **kw):
    return Variant(name, "converter", "ok", path=f"{name}.tflite", bytes=kw.pop("kb", 40) * 1024, accuracy=acc,
                   accuracy_ci=[acc - 0.015, acc + 0.01], latency_ms={"median": ms, "ci95": [ms * (1 - spread), ms * (1 + spread)],
                                                                      "p90": ms * 1.1, "p99": ms * 1.5}, **kw)


def study(variants, recommended="dynamic", **settings):
    return Results(quantbench_version="0.1.0", model={"name": "cnn", "format": "keras",
                                                      "inputs": [{"name": "image", "shape": [-1, 8, 8, 1]}]},
                   data={"eval_samples": 450, "eval_from": "digits test split", "labels": True},
                   machine={"cpu": "Xeon", "threads": 1, "litert": "2.3.0"},
                   settings={"seed": 0, "calib_size": 200, **settings}, variants=variants,
                   recommendation={"technique": recommended, "summary": f"Ship {recommended}."})


A = study([variant("float32", 0.96, 0.020), variant("dynamic", 0.96, 0.015), variant("int8-only", 0.95, 0.012),
           Variant("int16x8", "converter", "failed", error="no kernel")])


def by_name(a, b):
    headers, rows, counts = comparison.rows(a, b)
    return headers, {r[0].split(" (")[0]: r for r in rows}, counts


def test_rows_mark_overlap_absent_and_failed():
    b = study([variant("float32", 0.96, 0.0201), variant("dynamic", 0.90, 0.030),
               variant("int8-only", 0.95, 0.0121), variant("int16x8", 0.95, 0.2)], recommended="int8-only")
    headers, rows, counts = by_name(A, b)
    acc, lat = headers.index("overlap"), len(headers) - 3
    assert rows["float32"][acc] == "yes" and rows["float32"][lat] == "yes"
    assert rows["dynamic"][acc] == "**no**" and rows["dynamic"][lat] == "**no**"  # 0.96 vs 0.90; 15 vs 30 µs
    assert rows["dynamic"][headers.index("B ÷ A")] == "2.00"
    assert rows["int16x8"][1] == "failed" and rows["int16x8"][acc] == "—"
    assert counts["accuracy"] == [True, False, True] and counts["latency"] == [True, False, True]
    labels = [r[0] for r in comparison.rows(A, b)[1]]
    assert "dynamic (recommended by A)" in labels and "int8-only (recommended by B)" in labels
    only_a = comparison.rows(A, study([variant("float32", 0.96, 0.02)]))[1]
    assert only_a[1][2] == "absent"


def test_every_latency_moving_alike_is_named_the_machine():
    slower = dataclasses.replace(A, variants=[dataclasses.replace(v, latency_ms={
        "median": v.latency_ms["median"] * 1.8, "ci95": [x * 1.8 for x in v.latency_ms["ci95"]]})
        if v.ok else v for v in A.variants])
    text = "\n".join(comparison.summary(comparison.rows(A, slower)[2]))
    assert "Latency intervals overlap for 0 of 3 techniques." in text
    assert "Every latency moved alike (B ÷ A 1.80–1.80, median 1.80)" in text and "machine" in text
    apart = study([variant("float32", 0.96, 0.040), variant("dynamic", 0.96, 0.015), variant("int8-only", 0.95, 0.05)])
    assert "moved alike" not in " ".join(comparison.summary(comparison.rows(A, apart)[2]))


def test_differences_say_what_limits_the_comparison():
    assert comparison.differences(A, A) == []
    other = dataclasses.replace(A, model={**A.model, "name": "resnet"}, machine={**A.machine, "threads": 2},
                                settings={**A.settings, "seed": 1})
    notes = " ".join(comparison.differences(A, other))
    assert "The models differ (cnn (keras)" in notes and "The machines differ" in notes
    assert "Settings changed: seed 0 → 1." in notes


@pytest.fixture
def two_files(tmp_path):
    a, b = tmp_path / "a" / "results.json", tmp_path / "b" / "results.json"
    for path, res in ((a, A), (b, dataclasses.replace(A, settings={**A.settings, "calib_size": 100}))):
        path.parent.mkdir()
        res.save(path)
    return a, b


def test_report_of_two_prints_and_writes_only_with_out(two_files, tmp_path, capsys):
    a, b = two_files
    assert main(["report", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Two quantbench studies side by side") and "Settings changed: calib_size 200 → 100." in out
    assert not list(tmp_path.rglob("comparison.md")) and not (a.parent / "report.html").exists()
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main(["report", str(a), str(b), "--out", str(folder)]) == 0
    assert (folder / "comparison.md").read_text().startswith("# Two quantbench studies")
    assert (folder / "notes.txt").read_text() == "mine"


def test_report_of_two_refuses_then_forces(two_files, tmp_path, capsys):
    a, b = two_files
    out = tmp_path / "o"
    out.mkdir()
    (out / "comparison.md").write_text("someone's")
    assert main(["report", str(a), str(b), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == (f"quantbench: error: Output file {out / 'comparison.md'} already exists. "
                                        "Expected a new path. Fix: choose another --out, or pass --force to replace it.")
    assert (out / "comparison.md").read_text() == "someone's"
    assert main(["report", str(a), str(b), "--out", str(out), "--force"]) == 0
    assert (out / "comparison.md").read_text().startswith("# Two quantbench studies")


@pytest.mark.parametrize("case,message", [
    ("three", "quantbench: error: 3 results files given. Expected one (its report) or two (side by side). "
              "Fix: pass one or two results.json files."),
    ("out is a file", "quantbench: error: --out {file} is a file. Expected a folder for comparison.md. "
                      "Fix: choose another --out."),
    ("missing", "quantbench: error: No results file at {missing}. Expected a results.json written by quantbench."),
])
def test_report_of_two_refuses_bad_input_in_one_line(two_files, tmp_path, capsys, case, message):
    a, b = two_files
    file, missing = tmp_path / "file.txt", tmp_path / "nope.json"
    file.write_text("mine")
    argv = {"three": [a, b, a], "out is a file": [a, b, "--out", file], "missing": [a, missing]}[case]
    assert main(["report", *map(str, argv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message.format(file=file, missing=missing))
    assert file.read_text() == "mine"
