"""What scoring every output by its task costs: `quantbench compare` on MobileNetV2 224 (100 evaluation images
with 1,000-class labels, 200 calibration images), this tree against a base tree (today's main), interleaved
A B A B in one run, wall time and peak RSS of the whole process tree (sampled every 0.2 s); and the metrics step
alone (`evaluate.measure` on 14 variants' outputs) in each tree.

    python bench/task_metrics_cost.py --base /tmp/qb-base [--rounds 2] [--smoke]

Make the base tree with `git worktree add /tmp/qb-base <commit>`. Weights are random (weights=None): nothing
is downloaded; the labels are random classes, so accuracy is near 0 and only the cost is measured. --smoke: the
untrained digits CNN as a float .tflite (bench/scale.py's smoke_files) studied as it is, 60 digits, one round
(`--base .` runs this tree on both sides): checks the script runs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scale  # bench/scale.py: smoke_files
from scale import tree_rss  # RSS summed over a process and its children

HERE = Path(__file__).resolve().parents[1]

MEASURE = """
import sys, time, json
import numpy as np
from quantbench.measure import evaluate
rng = np.random.default_rng(0)
n, k, variants = {n}, 1000, 14
ref = rng.dirichlet(np.ones(k), n).astype(np.float32)
outs = {{"keras": [ref]}}
for i in range(variants):
    noisy = np.abs(ref + rng.normal(0, 1e-4, ref.shape)).astype(np.float32)
    outs[f"v{{i}}"] = [noisy / noisy.sum(1, keepdims=True)]
labels = rng.integers(0, k, n)
start = time.perf_counter()
for _ in range({repeat}):
    evaluate.measure(outs, "keras", labels, ["probs"])
print(json.dumps({{"seconds": (time.perf_counter() - start) / {repeat}}}))
"""


def run(cmd: list[str], tree: Path, cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the process tree, and stdout of a command run with `tree` on PYTHONPATH."""
    import psutil

    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed in {tree}: {err[-2000:]}")
    return time.perf_counter() - start, peak, out


def build(cache: Path) -> tuple[Path, Path, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    size = 224
    model = cache / f"mobilenetv2_{size}.keras"
    if not model.exists():
        import keras

        keras.utils.set_random_seed(0)
        keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3)).save(model)
    rng = np.random.default_rng(0)
    n_eval, n_calib = 100, 200
    test, train = cache / f"test{size}.npz", cache / f"train{size}.npz"
    if not test.exists():
        np.savez(test, x=rng.uniform(-1, 1, (n_eval, size, size, 3)).astype(np.float32),
                 y=rng.integers(0, 1000, n_eval))
        np.savez(train, x=rng.uniform(-1, 1, (n_calib, size, size, 3)).astype(np.float32))
    return model, test, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a worktree of the commit to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/qb-task-cost"))
    parser.add_argument("--smoke", action="store_true", help="a tiny .tflite, 60 digits, one round: checks the "
                        "script runs")
    args = parser.parse_args()
    if args.smoke:  # a study of a .tflite imports no TensorFlow: seconds
        model, test = scale.smoke_files(args.cache)
        inputs = ["--data", str(test), *scale.SMOKE_COMPARE]
    else:
        model, test, train = build(args.cache)
        inputs = ["--data", str(test), "--calib", str(train)]
    trees = {"base": args.base.resolve(), "this": HERE}
    rows = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1 if args.smoke else args.rounds):
            for name, tree in trees.items():  # interleaved: A B, A B
                out = Path(tmp) / f"{name}{r}"
                seconds, peak, _ = run([sys.executable, "-m", "quantbench", "compare", str(model), *inputs,
                                        "--out", str(out), "--quiet"], tree, Path(tmp))
                saved = json.loads((out / "results.json").read_text())
                acc = {v["technique"]: v.get("accuracy") for v in saved["variants"]}
                rows[name].append((seconds, peak, acc))
                print(f"round {r} {name:<5} compare {seconds:6.1f} s, peak {peak / 2**30:5.2f} GiB", flush=True)
        n = 20 if args.smoke else 100
        measured = {name: json.loads(run([sys.executable, "-c", MEASURE.format(n=n, repeat=3)], tree, Path(tmp))[2])
                    for name, tree in trees.items()}
    for name in trees:
        secs = [s for s, _, _ in rows[name]]
        peaks = [p for _, p, _ in rows[name]]
        print(f"{name:<5}: compare median {np.median(secs):.1f} s (runs {', '.join(f'{s:.1f}' for s in secs)}), "
              f"peak {max(peaks) / 2**30:.2f} GiB; evaluate.measure on 14 variants x {n} samples x 1,000 "
              f"classes: {measured[name]['seconds'] * 1000:.1f} ms")
    same = all(rows["base"][i][2] == rows["this"][i][2] for i in range(len(rows["base"])))
    print(f"accuracy figures identical in both trees: {same}")


if __name__ == "__main__":
    main()
