"""How fast a bad path or a bad flag is refused: the wall time of `quantbench ...` runs that must exit 2.

Usage: PYTHONPATH=. .venv/bin/python bench/refusal_speed.py [--repeats 7] [--json refusals.json]
                                                             [--baseline /path/to/another/checkout]

Makes a tiny Keras model, a data file and a float .tflite in a temporary folder (TensorFlow is imported here,
in the bench's own process, never in the timed ones), then runs every case of CASES `--repeats` times as a
fresh `python -m quantbench ...` subprocess, in turn (case 1 to N, then again), and prints per case the
median and the range of the wall time, and the first line of the message. A case that does not exit 2 with
its expected message is reported as wrong. With --baseline, each run of a case is followed by the same run
with PYTHONPATH set to that checkout, so both are timed under the same load. tests/test_refusals.py runs the
same CASES and checks that none of them imports TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# (what, argv with {model} {data} {tflite} {input} {tmp} {taken}, a fragment of the one-line message; {taken}
# is a folder that holds a file)
CASES = [
    ("compare: model file missing", ["compare", "{tmp}/missing.keras", "--data", "{data}"], "No model at"),
    ("compare: --data missing", ["compare", "{model}", "--data", "{tmp}/missing.npz"], "No data at"),
    ("compare: --calib missing", ["compare", "{model}", "--data", "{data}", "--calib", "{tmp}/missing.npz"],
     "No data at"),
    ("compare: --data not a data file", ["compare", "{model}", "--data", "{model}"],
     "is not a data file quantbench reads"),
    ("compare: unknown technique", ["compare", "{model}", "--data", "{data}", "--techniques", "nope"],
     "Unknown technique 'nope'"),
    ("compare: unknown --target", ["compare", "{model}", "--data", "{data}", "--target", "nope"],
     "Unknown --target 'nope'"),
    ("compare: unknown --task kind", ["compare", "{model}", "--data", "{data}", "--task", "out=nope"],
     "unknown kind 'nope'"),
    ("compare: --out not empty", ["compare", "{model}", "--data", "{data}", "--out", "{taken}"],
     "already exists and is not empty"),
    ("compare: --max-memory not a number", ["compare", "{model}", "--data", "{data}", "--max-memory", "lots"],
     "--max-memory is 'lots'"),
    ("compare: unknown option", ["compare", "{model}", "--data", "{data}", "--nope"], "No such option"),
    ("convert: model file missing", ["convert", "{tmp}/missing.keras", "-t", "dynamic", "-o", "{tmp}/o.tflite"],
     "No model at"),
    ("convert: unknown technique", ["convert", "{model}", "-t", "nope", "-o", "{tmp}/o.tflite"],
     "Unknown technique 'nope'"),
    ("convert: no --calib for int8-only", ["convert", "{model}", "-t", "int8-only", "-o", "{tmp}/o.tflite"],
     "needs calibration data"),
    ("qat: --data missing", ["qat", "{model}", "--data", "{tmp}/missing.npz", "-o", "{tmp}/q.tflite"], "No data at"),
    ("predict: model file missing", ["predict", "{tmp}/missing.tflite", "--input", "{input}"], "No .tflite file at"),
    ("predict: --input missing", ["predict", "{tflite}", "--input", "{tmp}/missing.npy"], "No input file at"),
    ("bench: file missing", ["bench", "{tmp}/missing.tflite"], "No .tflite file at"),
    ("inspect: file missing", ["inspect", "{tmp}/missing.tflite"], "No .tflite file at"),
    ("report: results missing", ["report", "{tmp}/missing.json"], "No results file at"),
    ("sweep: file missing", ["sweep", "{tmp}/missing.toml"], "does not exist or is not a file"),
    ("demo: --out not empty", ["demo", "--out", "{taken}"], "already exists and is not empty"),
]


def make_files(folder: Path) -> dict:
    """A tiny trained-shape Keras model, its float .tflite, a labelled .npz and an input .npy in `folder`."""
    from quantbench.core.quiet import configure
    from quantbench.engines.converter import convert
    from quantbench.runtime.tf import import_tensorflow

    configure()  # TensorFlow's logs quiet in this process, as the CLI has them
    import_tensorflow()
    import keras

    inputs = keras.Input((8, 8, 1), name="image")
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs, name="tiny")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 16, (64, 8, 8, 1)).astype(np.float32)
    model.save(folder / "model.keras")
    (folder / "model.tflite").write_bytes(convert(model, "float32").content)
    np.savez(folder / "data.npz", x=x, y=rng.integers(0, 10, 64))
    np.save(folder / "x.npy", x[:4])
    (folder / "taken").mkdir()
    (folder / "taken" / "notes.txt").write_text("someone's work")
    return {"model": str(folder / "model.keras"), "data": str(folder / "data.npz"),
            "tflite": str(folder / "model.tflite"), "input": str(folder / "x.npy"), "tmp": str(folder),
            "taken": str(folder / "taken")}


def argv(case, files: dict) -> list[str]:
    return [a.format(**files) for a in case[1]]


def run_once(case, files: dict, tree: str | None = None) -> tuple[float, int, str]:
    """(wall seconds, exit code, stderr) of one `python -m quantbench ...` of the case, with quantbench from `tree`
    (default: the checkout this bench imports it from), run in the temporary folder: `-m` puts the working
    folder first on sys.path, which would otherwise pick the quantbench there."""
    import quantbench

    env = {**os.environ, "COLUMNS": "200",  # a usage error's panel on one line
           "PYTHONPATH": str(Path(tree or Path(quantbench.__file__).parent.parent).resolve())}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "quantbench", *argv(case, files)], capture_output=True, text=True,
                          env=env, timeout=120, cwd=files["tmp"])
    return time.perf_counter() - start, proc.returncode, proc.stderr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--baseline", help="another checkout to time the same cases from, interleaved")
    p.add_argument("--smoke", action="store_true", help="one repeat of each case")
    a = p.parse_args()
    if a.smoke:
        a.repeats = 1
    with tempfile.TemporaryDirectory(prefix="refusals-") as tmp:
        files = make_files(Path(tmp))
        times = {c[0]: [] for c in CASES}
        base = {c[0]: [] for c in CASES}
        wrong = {}
        for _ in range(a.repeats):
            for case in CASES:
                seconds, code, err = run_once(case, files)
                times[case[0]].append(seconds)
                if code != 2 or case[2] not in err:
                    wrong[case[0]] = f"exit {code}: {err.strip()[-300:]}"
                if a.baseline:
                    base[case[0]].append(run_once(case, files, a.baseline)[0])
        rows = []
        for case in CASES:
            t = times[case[0]]
            _, _, err = run_once(case, files)
            first = next((ln.strip(" │") for ln in err.splitlines() if case[2] in ln), err.strip()[:120])
            rows.append({"case": case[0], "argv": " ".join(case[1]), "median_s": round(statistics.median(t), 3),
                         "min_s": round(min(t), 3), "max_s": round(max(t), 3), "message": first[:160],
                         "wrong": wrong.get(case[0]),
                         "baseline_median_s": round(statistics.median(base[case[0]]), 3) if a.baseline else None})
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  median    range (s)   " + ("baseline  " if a.baseline else "") + "message")
    for r in rows:
        was = f"{r['baseline_median_s']:6.2f} s  " if a.baseline else ""
        print(f"{r['case']:<{width}}  {r['median_s']:.2f} s  {r['min_s']:.2f}–{r['max_s']:.2f}  {was}"
              f"{r['message'][:80]}")
        if r["wrong"]:
            print(f"    WRONG: {r['wrong']}")
    slowest = max(rows, key=lambda r: r["median_s"])
    print(f"slowest median: {slowest['median_s']:.2f} s ({slowest['case']}); {a.repeats} repeats each; "
          f"python -m quantbench with Python {sys.version.split()[0]}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
