"""One calibration for the converter's int8 family against one per technique: time, peak RSS, identical files.

Usage: .venv/bin/python bench/shared_calibration.py [--models digits,mobilenetv2] [--rounds 2] [--smoke]

Path A converts int8-fallback, int8-only, uint8-only and int16x8 one by one with `conversion.convert` (a full
conversion and calibration each); path B makes the same four with `conversion.convert_family` (one calibrating
conversion, then one quantization each). Every run is a fresh process (as a study's worker would be), one at a
time, alternating A, B / B, A round by round on this shared machine; each reports the wall seconds of the path
alone (model already loaded) and its process's peak RSS. Files are compared byte for byte across paths and
rounds; a file that differs is evaluated against the float model on held-out data (agreement, and accuracy
where labels exist).

Models: the digits reference CNN trained 3 epochs, 200 calibration samples from its train split, the test split
held out; `keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))` with 200 calibration and 100
evaluation images uniform in [-1, 1] (seeded). Random weights: agreement, not accuracy, means something there.

--smoke: digits trained 1 epoch, 50 calibration samples, one round, both paths in this process (no fresh
process, so its peak RSS means nothing): checks the script runs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FAMILY = ("int8-fallback", "int8-only", "uint8-only", "int16x8")
PATHS = {"A": "convert one by one", "B": "convert_family"}


def child(path: str, model: str, calib: str, out: str) -> None:
    """One run of one path in this process; prints its figures as JSON on the last line."""
    import psutil

    from quantbench.core import quiet
    from quantbench.core.errors import ConversionError
    from quantbench.engines.converter import convert, convert_family
    from quantbench.inputs import models

    quiet.configure()
    source = models.load_model(model)
    x = np.load(calib)
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    if path == "A":
        made = {}
        for t in FAMILY:
            try:
                made[t] = convert(source, t, x)
            except ConversionError as exc:
                made[t] = exc
    else:
        made = convert_family(source, FAMILY, x)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    files = {}
    for t, conv in made.items():
        if isinstance(conv, ConversionError):
            files[t] = {"error": str(conv)}
        else:
            (Path(out) / f"{t}.tflite").write_bytes(conv.content)
            files[t] = {"seconds": round(conv.seconds, 3), "bytes": len(conv.content)}
    print(json.dumps({"path": path, "seconds": seconds, "rss_before": rss_before, "peak_rss": peak, "files": files}))


def prepare(name: str, folder: Path, smoke: bool = False):
    """Save the model and its calibration inputs; return paths and the held-out data (x, labels or None)."""
    import keras

    from quantbench.inputs import data, models

    rng = np.random.default_rng(0)
    if name == "digits":
        split = data.digits()
        models.seed_everything(1)
        model = models.train(models.reference_cnn(), split.x_train, split.y_train, epochs=1 if smoke else 3)
        calib = data.calibration_sample(split.x_train, 50 if smoke else 200, seed=0)
        held_out = (split.x_test, split.y_test)
    else:
        keras.utils.set_random_seed(0)
        model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
        calib = rng.uniform(-1, 1, (200, 224, 224, 3)).astype(np.float32)
        held_out = (rng.uniform(-1, 1, (100, 224, 224, 3)).astype(np.float32), None)
    model_path, calib_path = folder / f"{name}.keras", folder / f"{name}-calib.npy"
    model.save(model_path)
    np.save(calib_path, calib)
    return model_path, calib_path, held_out, model


def evaluate(content: bytes, x: np.ndarray, y, reference: np.ndarray) -> str:
    import quantbench
    from quantbench.measure import evaluate as ev

    out = quantbench.load(content).predict(x)
    text = f"agreement {ev.agreement(out, reference):.4f}"
    return text + (f", accuracy {ev.accuracy(out, y):.4f}" if y is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,mobilenetv2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=4, metavar=("PATH", "MODEL", "CALIB", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="digits, one round, in this process: checks the script "
                        "runs")
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    if args.smoke:
        args.models, args.rounds = "digits", 1

    from quantbench.core import machine, quiet

    quiet.configure()
    m = machine.describe()
    print(f"{m['cpu']}, {m['cores']} cores; paths: " + "; ".join(f"{k} = {v}" for k, v in PATHS.items()))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            folder = Path(tmp) / name
            folder.mkdir()
            model_path, calib_path, (x, y), model = prepare(name, folder, args.smoke)
            print(f"\n{name}: {model.count_params():,} parameters, {len(np.load(calib_path))} calibration inputs, "
                  f"{len(x)} held out", flush=True)
            runs = []
            for r in range(args.rounds):
                for path in ("AB" if r % 2 == 0 else "BA"):
                    out = folder / f"{path}{r}"
                    out.mkdir()
                    if args.smoke:
                        with contextlib.redirect_stdout(io.StringIO()) as said:
                            child(path, str(model_path), str(calib_path), str(out))
                        res = json.loads(said.getvalue().strip().splitlines()[-1])
                    else:
                        proc = subprocess.run([sys.executable, __file__, "--child", path, str(model_path),
                                               str(calib_path), str(out)], capture_output=True, text=True)
                        if proc.returncode != 0:
                            sys.exit(f"{name} path {path} round {r} failed:\n{proc.stderr[-3000:]}")
                        res = json.loads(proc.stdout.strip().splitlines()[-1])
                    res.update(round=r, out=out)
                    runs.append(res)
                    print(f"  round {r} {path}: {res['seconds']:6.1f} s, peak RSS {res['peak_rss'] / 2**20:6.0f} MiB "
                          f"(before the path {res['rss_before'] / 2**20:.0f} MiB); per technique s: "
                          + ", ".join(f"{t} {f.get('seconds', f.get('error'))}" for t, f in res["files"].items()),
                          flush=True)
            report(runs, x, y, model)


def report(runs: list[dict], x, y, model) -> None:
    for path in "AB":
        secs = [r["seconds"] for r in runs if r["path"] == path]
        peaks = [r["peak_rss"] / 2**20 for r in runs if r["path"] == path]
        print(f"  {path} ({PATHS[path]}): median {np.median(secs):.1f} s of {len(secs)} runs {[round(s, 1) for s in secs]}, "
              f"peak RSS max {max(peaks):.0f} MiB")
    ratios = [a["seconds"] / b["seconds"] for a, b in zip([r for r in runs if r["path"] == "A"],
                                                          [r for r in runs if r["path"] == "B"])]
    print(f"  A/B time per round: {[round(q, 2) for q in ratios]}")
    reference = None
    for t in FAMILY:
        contents = {(r["path"], r["round"]): (r["out"] / f"{t}.tflite") for r in runs}
        present = {k: p.read_bytes() for k, p in contents.items() if p.exists()}
        errors = {r["files"][t].get("error") for r in runs if "error" in r["files"][t]}
        if errors:
            print(f"  {t}: refused in {len(contents) - len(present)} of {len(contents)} runs: {errors}")
        distinct = {}
        for k, b in present.items():
            distinct.setdefault(b, []).append(k)
        if len(distinct) == 1:
            print(f"  {t}: byte-identical in every run of both paths ({len(present)} files)")
            continue
        if reference is None:
            reference = model.predict(x, batch_size=32, verbose=0)
        for b, keys in distinct.items():
            print(f"  {t}: {len(b)} bytes from {keys}: {evaluate(b, x, y, reference)}")


if __name__ == "__main__":
    main()
