"""A fixed-seed subset of bench/fuzz.py: malformed files of every kind give exit 0 or exit 2 with one line."""
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

FUZZ = Path(__file__).resolve().parent.parent / "bench" / "fuzz.py"
COUNT = 24  # cases per kind (every command of each kind included): under a minute, the base files included


def _harness():
    """bench/fuzz.py as a module (bench/ is not a package)."""
    name = "quantbench_bench_fuzz"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FUZZ)
        sys.modules[name] = importlib.util.module_from_spec(spec)  # its dataclass looks its module up here
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_outcomes_are_classified_from_exit_code_and_stderr():
    fuzz = _harness()
    assert fuzz.outcome(0, "") == "ok"
    assert fuzz.outcome(0, "quantbench: note: XNNPACK refused m.tflite (...)\n") == "ok"
    assert fuzz.outcome(2, "quantbench: error: x is not a readable NumPy file (...). Expected ... Fix: ...\n") == "refused"
    assert fuzz.outcome(2, "quantbench: error: one\nand another line\n") == "multi-line"
    assert fuzz.outcome(1, "quantbench: internal error: KeyError: 0 (run again with --debug ...)\n") == "internal"
    assert fuzz.outcome(2, "Traceback (most recent call last):\n  File ...\nValueError: x\n") == "traceback"
    assert fuzz.outcome(-11, "") == "crash"
    assert fuzz.outcome(None, "") == "timeout"


def test_mutations_are_seeded_and_change_the_file():
    fuzz = _harness()
    content = bytes(range(256)) * 8
    draws = [fuzz.mutate(content, [b"donor" * 100], np.random.default_rng([5, i])) for i in range(40)]
    assert draws == [fuzz.mutate(content, [b"donor" * 100], np.random.default_rng([5, i])) for i in range(40)]
    assert all(mutated != content for mutated, _ in draws)
    assert {how.split()[0] for _, how in draws} == {"flip", "flip-head", "truncate", "splice", "duplicate", "delete"}


def test_fuzz_subset_has_no_internal_error_traceback_or_crash(tmp_path):
    # A subprocess: the harness forks one child per run, which is only safe from a process where no
    # TensorFlow op has run yet (this one has run many).
    out = tmp_path / "fuzz.json"
    proc = subprocess.run([sys.executable, str(FUZZ), "--seed", "1", "--count", str(COUNT), "--kind", "all",
                           "--json", str(out), "--keep", str(tmp_path / "failures")],
                          capture_output=True, text=True, timeout=900)
    result = json.loads(out.read_text())
    assert result["finished"] and result["cases"] == dict.fromkeys(("tflite", "npy", "npz", "keras", "h5"), COUNT)
    assert result["failures"] == [], proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    totals = Counter()
    for commands in result["counts"].values():
        for counts in commands.values():
            totals.update(counts)
    assert set(totals) <= {"ok", "refused"} and totals["ok"] > 0 and totals["refused"] > 0
    assert {c for commands in result["counts"].values() for c in commands} == {
        "inspect", "predict", "convert", "compare", "compare --data", "compare --calib"}
