"""The demo's results.json is the same before and after the relayout into layer folders and the StudyConfig
(issue 23): accuracies, sizes, scores, the recommendation, every field but timing's (tools/same_results.py). The
tree before is main's last commit with the flat layout, taken from this clone's history."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "753e814"  # main before the relayout: quantbench's 38 flat modules
DEMO = ["demo", "--quiet", "--epochs", "1", "--techniques", "float32,dynamic,int8-only,float16,weight-only-int8",
        "--calib-sizes", "10,50", "--time-budget", "0.2", "--workers", "0", "--max-memory", "3"]


def _same_results():
    spec = importlib.util.spec_from_file_location("same_results", ROOT / "tools" / "same_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_gives_the_same_results_json_before_and_after_the_relayout(tmp_path):
    have = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{BEFORE}^{{commit}}"], capture_output=True)
    assert have.returncode == 0, (f"commit {BEFORE} is not in this clone, and this test runs the demo there: it "
                                  "needs the repository's history (a clone without --depth)")
    before = tmp_path / "before"
    before.mkdir()
    tree = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE, "quantbench"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(before)], input=tree.stdout, check=True)
    assert (before / "quantbench" / "study.py").is_file() and not (ROOT / "quantbench" / "study.py").exists()
    runs = {name: subprocess.Popen([sys.executable, "-m", "quantbench", *DEMO, "--out", str(tmp_path / name / "s")],
                                   cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(code)},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for name, code in (("before", before), ("after", ROOT))}  # side by side: timing is not compared
    results = {}
    for name, proc in runs.items():
        try:
            _, err = proc.communicate(timeout=600)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        results[name] = json.loads((tmp_path / name / "s" / "results.json").read_text())
    found = _same_results().differences(results["before"], results["after"])
    assert found == [], "\n".join(f"{where}: {a!r} before, {b!r} after" for where, a, b in found[:20])
    ok = [v for v in results["after"]["variants"] if v["status"] == "ok"]
    assert len(ok) == 6 and all(v["accuracy"] is not None and v["bytes"] > 0 for v in ok)
    assert results["after"]["recommendation"]["technique"] and results["after"]["studies"]


def test_same_results_names_a_difference_outside_timing():
    same = _same_results()
    a = {"variants": [{"accuracy": 0.9, "latency_ms": {"median": 1.0}, "bytes": 10}]}
    b = {"variants": [{"accuracy": 0.91, "latency_ms": {"median": 2.0}, "bytes": 10}]}
    assert same.differences(a, b) == [(".variants[0].accuracy", 0.9, 0.91)]
    assert same.differences(a, {"variants": [{**a["variants"][0], "latency_ms": {"median": 3.0}}]}) == []
