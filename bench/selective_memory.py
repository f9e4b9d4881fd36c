"""Peak and growing memory of a selective-int8 search of 30 candidates: in process, re-converting, or in a worker.

Usage: PYTHONPATH=. .venv/bin/python bench/selective_memory.py [--conversions 30] [--modes search,reconvert,worker]
                                                                 [--model tall|mobilenet] [--smoke]

TFLiteConverter.convert() is reported to keep ~22 MB per call in TF 2.20/2.21 (tensorflow/tensorflow#122598).
Each mode runs in a fresh process on the same model (`tall`: the reference CNN's convolutions under 28
Dense(256) layers, 1.8 M parameters, 32 layers to choose from, on digits; `mobilenet`: MobileNetV2 alpha 0.35
at 96x96, random weights and inputs, a larger graph), and prints the process's RSS after every candidate,
its peak (sampled every 20 ms) and the least-squares growth per candidate:

  search     quantbench.engines.selective.selective(): one calibrating conversion, then one re-quantization of the
             calibrated model per candidate (what quantbench does)
  reconvert  a full conversion per candidate (fresh converter, calibration, quantization), in process
  worker     the same full conversions in one spawned worker process reused for the batch (it loads the
             model from a temporary .keras file once); the parent's RSS and the worker's are both reported

--smoke: the tall model with 2 Dense(256) layers, 2 candidates, search and reconvert in this process (worker only
when --modes names it: its spawned process imports TensorFlow, seconds more): checks the script runs.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil

MB = 2 ** 20


class Sampler:
    """Peak RSS of this process (and of its children) sampled in a background thread."""

    def __init__(self, period: float = 0.02):
        self.proc, self.period = psutil.Process(), period
        self.peak = self.child_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            for child in self.proc.children(recursive=True):
                try:
                    self.child_peak = max(self.child_peak, child.memory_info().rss)
                except psutil.Error:
                    pass
            time.sleep(self.period)

    def rss(self) -> int:
        return self.proc.memory_info().rss

    def stop(self):
        self._stop.set()
        self._thread.join()


def build_model(name: str, depth: int = 28):
    """The model, its calibration inputs and evaluation inputs."""
    from quantbench.inputs import data, models
    from quantbench.runtime.tf import import_tensorflow

    import_tensorflow()
    import keras

    models.seed_everything(0)
    if name == "mobilenet":
        rng = np.random.default_rng(0)
        inputs = rng.uniform(-1, 1, (48, 96, 96, 3)).astype(np.float32)
        model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
        return model, inputs[:16], inputs[16:]
    split = data.digits()
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(64, 3, activation="relu")(inputs)
    h = keras.layers.Conv2D(32, 3, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    for _ in range(depth):
        h = keras.layers.Dense(256, activation="relu")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(h)
    model = keras.Model(inputs, outputs, name="tall_cnn")
    return model, data.calibration_sample(split.x_train, 64, seed=0), split.x_test[:100]


# ---- The worker: loads the model once, converts many denylists, sends back bytes -----------------

_WORKER = {}


def _worker_init(model_path: str, calib_path: str) -> None:
    from quantbench.core import quiet

    quiet.configure()  # before TensorFlow is imported in this process
    from quantbench.inputs import models

    _WORKER["model"] = models.load_model(model_path)
    _WORKER["calib"] = np.load(calib_path, allow_pickle=False)


def _worker_convert(float_layers: tuple[str, ...]) -> tuple[bytes, int]:
    from quantbench.engines.selective import _Calibrated

    content = _Calibrated(_WORKER["model"], _WORKER["calib"]).quantize(float_layers)
    return content, psutil.Process().memory_info().rss


# ---- One mode, in this process -------------------------------------------------------------------

def run_mode(mode: str, n: int, model_name: str, depth: int = 28) -> None:
    import quantbench
    from quantbench.engines.selective import _Calibrated, layer_errors, selective

    model, calib, x_eval = build_model(model_name, depth)
    names = [r["name"] for r in layer_errors(model, calib)]  # warm-up, and the order candidates follow
    if len(names) < n - 1:
        sys.exit(f"the model has {len(names)} layers; --conversions must be at most {len(names) + 1}")
    evaluate = lambda content: quantbench.load(content).predict(x_eval)  # noqa: E731
    sampler = Sampler()
    base, per_call, child = sampler.rss(), [], []
    start = time.perf_counter()

    def note(i, extra=""):
        per_call.append(sampler.rss())
        print(f"  {mode} {i + 1:2d}: {per_call[-1] / MB:7.0f} MB{extra}", flush=True)

    if mode == "search":
        selective(model, calib, evaluate, lambda outputs: (False, 0.0), max_float_layers=n - 1,
                  on_step=lambda step: note(len(step.float_layers)))
    elif mode == "reconvert":
        for k in range(n):
            evaluate(_Calibrated(model, calib).quantize(tuple(names[:k])))
            note(k)
    elif mode == "worker":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with tempfile.TemporaryDirectory() as tmp:
            model_path, calib_path = os.path.join(tmp, "model.keras"), os.path.join(tmp, "calib.npy")
            model.save(model_path)
            np.save(calib_path, calib)
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_worker_init, initargs=(model_path, calib_path)) as pool:
                for k in range(n):
                    content, worker_rss = pool.submit(_worker_convert, tuple(names[:k])).result()
                    evaluate(content)
                    child.append(worker_rss)
                    note(k, f"   worker {worker_rss / MB:7.0f} MB")
    else:
        sys.exit(f"unknown mode {mode!r}")
    seconds = time.perf_counter() - start
    sampler.stop()
    slope = lambda rss: np.polyfit(np.arange(len(rss)), np.asarray(rss) / MB, 1)[0]  # noqa: E731
    line = (f"RESULT {model_name} {mode}: {n} candidates in {seconds:.0f} s; RSS before {base / MB:.0f} MB, "
            f"after {per_call[-1] / MB:.0f} MB, peak {sampler.peak / MB:.0f} MB, "
            f"growth {slope(per_call):+.1f} MB/candidate")
    if child:
        line += (f"; worker RSS {child[0] / MB:.0f} -> {child[-1] / MB:.0f} MB, peak {sampler.child_peak / MB:.0f} MB, "
                 f"growth {slope(child):+.1f} MB/candidate")
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversions", type=int, default=30)
    parser.add_argument("--modes", default=None, help="default: search,reconvert,worker (--smoke: search,reconvert)")
    parser.add_argument("--model", choices=("tall", "mobilenet"), default="tall")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="a small model, 2 candidates, the modes in this "
                        "process: checks the script runs")
    args = parser.parse_args()
    modes = [m.strip() for m in (args.modes or ("search,reconvert" if args.smoke else "search,reconvert,worker"))
             .split(",") if m.strip()]
    if args.smoke:
        for mode in modes:
            run_mode(mode, 2, "tall", depth=2)
        return
    if args.in_process:
        run_mode(modes[0], args.conversions, args.model)
        return
    results = []
    for mode in modes:  # a fresh process per mode, so one mode's memory never counts in another's
        cmd = [sys.executable, os.path.abspath(__file__), "--in-process", "--modes", mode,
               "--conversions", str(args.conversions), "--model", args.model]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.exit(f"{mode} failed: {' '.join(cmd)}")
        results += [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    print("\n".join(results))


if __name__ == "__main__":
    main()
