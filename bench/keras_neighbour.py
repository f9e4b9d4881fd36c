"""Does timing the Keras model in the same rounds slow the LiteRT variants? On a demo folder.

Usage: .venv/bin/python bench/keras_neighbour.py runs/demo [--smoke]
Times the folder's variants at batch 1 (600 interleaved rounds, digits-test.npz inputs) without and with
the traced Keras model (model.keras) in the rounds, twice, and prints the medians in microseconds.
--smoke: 30 rounds, once.
"""
from __future__ import annotations

import argparse
import glob

import numpy as np

from quantbench.inputs import models
from quantbench.measure import timing as bench
from quantbench.runtime.litert import LiteModel

SHOWN = ("float32", "dynamic", "int8-only", "int16x8", "keras")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--smoke", action="store_true", help="30 rounds, once: checks the script runs")
    args = p.parse_args()
    folder = args.folder
    files = sorted(f for f in glob.glob(f"{folder}/*.tflite") if not f.endswith("recommended.tflite"))
    x = [np.load(f"{folder}/digits-test.npz")["x"]]
    source = models.load_model(f"{folder}/model.keras")
    lite = {f.rsplit("/", 1)[-1][:-len(".tflite")]: LiteModel(f) for f in files}
    for trial in range(1 if args.smoke else 2):
        for with_keras in (False, True):
            runners = {name: bench.lite_runner(m, x, 1) for name, m in lite.items()}
            if with_keras:
                runners["keras"] = bench.reference_runner(source, x, 1)
            timing = bench.latency(runners, 30 if args.smoke else 600, warmup=10)
            print(f"trial {trial}, keras in the rounds: {with_keras!s:<5} " + "  ".join(
                f"{k} {np.median(v) * 1e3:.1f} us" for k, v in timing.times.items() if k in SHOWN))


if __name__ == "__main__":
    main()
