"""The demo's variants on TFLite Micro: arena (RAM) and flash of each, and the time the TFLite Micro stage takes.

Usage: .venv/bin/python bench/mcu.py [--out DIR] [--runs 3] [--smoke]
Runs `quantbench demo --target mcu` (default techniques) into DIR, prints the TFLite Micro facts of every variant
as a Markdown table from its results.json, then times `mcu.measure_variants` alone on the same files, `--runs`
times: the stage `--target mcu` adds to a study. --smoke: a demo of 1 epoch, float32 and int8-only, 0.2 s of
timing, the stage timed once on 40 samples.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a tiny demo, the stage once: checks the script runs")
    args = parser.parse_args()
    tiny, quick = {}, {}
    if args.smoke:
        if importlib.util.find_spec("tflite_micro") is None:
            print("skipped: tflite-micro is not installed (pip install -e '.[mcu]')")
            return
        args.runs, tiny = 1, dict(epochs=1, calib_size=20)
        quick = dict(techniques="float32,int8-only", time_budget=0.2, workers=0)

    from quantbench.core import quiet
    from quantbench.measure import mcu
    from quantbench.record.results import Results
    from quantbench.runtime.litert import LiteModel
    from quantbench.study.config import StudyConfig
    from quantbench.study.pipeline import demo
    from quantbench.study.recommend import Goal

    quiet.configure()
    out = args.out or Path(tempfile.mkdtemp()) / "demo"
    start = time.perf_counter()
    demo(out, StudyConfig(goal=Goal(target="mcu"), force=True, **quick), **tiny)
    print(f"quantbench demo --target mcu: {time.perf_counter() - start:.1f} s in-process (TensorFlow import "
          f"not counted); rows from {out}/results.json\n")
    results = Results.load(out / "results.json")
    print("| variant | runs on TFLite Micro | arena (RAM) bytes | flash bytes | accuracy on TFLite Micro % "
          "| max diff from LiteRT (8-bit steps) | why not |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for v in results.variants:
        m = v.mcu
        if not m:
            continue
        if m["runs"]:
            state = "**wrong**" if m["wrong"] else "yes"
            print(f"| {v.technique} | {state} | {m['arena_bytes']:,} | {m['flash_bytes']:,} | "
                  f"{100 * m['accuracy']:.2f} | {mcu.steps_text(m['max_diff_steps'])} | |")
        else:
            print(f"| {v.technique} | no | — | {m['flash_bytes']:,} | — | — | {m['reason']} |")
    print(f"\nRecommended: {results.recommendation['technique']} — {results.recommendation['summary']}\n")

    with np.load(out / "digits-test.npz") as f:
        x, y = (f["x"][:40], f["y"][:40]) if args.smoke else (f["x"], f["y"])
    import keras

    reference = [keras.saving.load_model(out / "model.keras").predict(x, verbose=0)]
    paths = {v.technique: out / v.path for v in results.variants if v.mcu}
    litert = {}
    for name, path in paths.items():
        o = LiteModel(path).predict(x)
        litert[name] = o if isinstance(o, list) else [o]
    seconds = []
    for _ in range(args.runs):
        start = time.perf_counter()
        mcu.measure_variants(paths, {n: [x] for n in paths}, litert, reference, y)
        seconds.append(time.perf_counter() - start)
    print(f"TFLite Micro stage alone, {len(paths)} variants x {len(x)} samples: median "
          f"{statistics.median(seconds):.1f} s (min {min(seconds):.1f}, max {max(seconds):.1f}) over {args.runs} runs")


if __name__ == "__main__":
    main()
