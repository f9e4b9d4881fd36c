"""Every refusal of bench/refusal_speed.py happens before TensorFlow is imported (what makes it take under a
second there), checked by the modules a fresh process holds after it, not by timing."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "refusal_speed.py"
HEAVY = ("tensorflow", "keras", "tf_keras", "scipy", "sklearn", "matplotlib", "mlflow", "ray")

# One fresh process runs the cases in turn through quantbench.cli.main and reports, after each, its exit code,
# its stderr and which heavy modules are loaded by then (a case that imports one taints the cases after it: the
# first such case is the one to fix).
CHILD = """
import contextlib, io, json, sys
from quantbench.cli import main
for name, argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
    print(json.dumps({"case": name, "code": code, "err": err.getvalue(), "heavy": heavy}), flush=True)
"""


def _cases():
    spec = importlib.util.spec_from_file_location("quantbench_bench_refusal_speed", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_paths_and_flags_are_refused_before_tensorflow_is_imported(tiny_keras_path, tiny_variants, digits_npz,
                                                                       tmp_path, monkeypatch):
    import numpy as np

    bench = _cases()
    (tmp_path / "model.tflite").write_bytes(tiny_variants["float32"])
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 1), np.float32))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("someone's work")
    files = {"model": str(tiny_keras_path), "data": str(digits_npz[0]), "tflite": str(tmp_path / "model.tflite"),
             "input": str(tmp_path / "x.npy"), "tmp": str(tmp_path), "taken": str(tmp_path / "taken")}
    cases = [(c[0], bench.argv(c, files)) for c in bench.CASES]
    monkeypatch.setenv("COLUMNS", "200")  # a usage error's panel keeps its message on one line
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases), json.dumps(HEAVY)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [f["case"] for f in found] == [c[0] for c in bench.CASES]
    for f, case in zip(found, bench.CASES):
        assert f["code"] == 2 and case[2] in f["err"], f
        assert "Traceback" not in f["err"], f
        if case[2] != "No such option":  # typer's usage panel aside, one line
            assert len(f["err"].strip().splitlines()) == 1, f
        assert f["heavy"] == [], f"{f['case']} imported {f['heavy']} before refusing"
    assert (tmp_path / "taken" / "notes.txt").read_text() == "someone's work"
    assert sorted(set(bench.CASES[i][1][0] for i in range(len(bench.CASES)))) == sorted(
        ["bench", "compare", "convert", "demo", "inspect", "predict", "qat", "report", "sweep"])


def test_a_case_that_imports_tensorflow_is_caught(tmp_path):
    """The check above can fail: a refusal after TensorFlow's import (a command that loads the model first) is
    reported by the same child."""
    proc = subprocess.run([sys.executable, "-c", "import tensorflow\n" + CHILD,
                           json.dumps([("report", ["report", str(tmp_path / "missing.json")])]), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=300)
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["code"] == 2 and "tensorflow" in found["heavy"]
