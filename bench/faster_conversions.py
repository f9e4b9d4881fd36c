"""Where a real model's conversions spend their time, and what the study does about it (issue 11).

On MobileNetV2 224 (keras.applications, weights=None), one process, each pair A then B in turn:
  export   TFLiteConverter.from_keras_model (exports the model to a temporary SavedModel on every call) against
           from_saved_model on the model exported once (models.Source.export_for_converter): seconds per call,
           and whether the bytes are identical
  lq       lq-int8 and lq-int16x8 calibrated each on its own (lq.quantize) against one shared calibration
           (lq.quantize_family): seconds, identical bytes
  layers   the per-layer error study (QuantizationDebugger) on 16, 32 and 64 calibration samples: seconds, and
           how many of the ten worst layers each shares with 64

Usage: PYTHONPATH=. .venv/bin/python bench/faster_conversions.py [--cache /tmp/qb-scale] [--parts export,lq,layers]
       [--model M.keras --calib X.npz]   another model, e.g. the demo's: runs/demo/model.keras, runs/demo/digits-train.npz
Builds the model with bench/scale.py's cache when missing (not with --model). Nothing is downloaded.
--smoke: the untrained digits CNN and 64 digits as calibration, one technique and a family of two, the per-layer
error on 16 and 8 samples.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def seconds(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def export_part(source, calib, smoke: bool = False) -> None:
    from quantbench.engines import converter as conversion, techniques

    folder = Path(tempfile.mkdtemp()) / "savedmodel"
    ok, spent = seconds(lambda: source.export_for_converter(folder))
    print(f"export once: {spent:.1f} s ({'exported' if ok else 'not exported'})", flush=True)
    for name in ("float32",) if smoke else ("float32", "dynamic", "float16", "int8-only"):
        source.exported = None
        a, ta = seconds(lambda: conversion.convert(source, name, calib).content)
        source.exported = folder
        b, tb = seconds(lambda: conversion.convert(source, name, calib).content)
        print(f"{name:<16} from_keras_model {ta:5.1f} s   from the export {tb:5.1f} s   identical bytes: {a == b}",
              flush=True)
    family = [techniques.get(n) for n in ("int8-fallback", "int8-only", "uint8-only", "int16x8")[:2 if smoke else 4]]
    source.exported = None
    a, ta = seconds(lambda: conversion.convert_family(source, family, calib))
    source.exported = folder
    b, tb = seconds(lambda: conversion.convert_family(source, family, calib))
    same = all(getattr(a[k], "content", None) == getattr(b[k], "content", None) for k in a)
    print(f"{'int8 family':<16} from_keras_model {ta:5.1f} s   from the export {tb:5.1f} s   identical bytes: {same}",
          flush=True)
    source.exported = folder


def lq_part(source, calib) -> None:
    from quantbench.engines import converter as conversion, litert_quantizer as lq

    content = conversion.convert(source, "float32").content
    names = ["lq-int8", "lq-int16x8"]
    apart, ta = seconds(lambda: {n: lq.quantize(content, n, calib[0]).content for n in names})
    shared, tb = seconds(lambda: lq.quantize_family(content, names, calib[0]))
    same = all(apart[n] == shared[n].content for n in names)
    print(f"LiteRT Quantizer lq-int8 + lq-int16x8: each calibrated {ta:5.1f} s   one calibration {tb:5.1f} s   "
          f"identical bytes: {same}", flush=True)


def layers_part(source, calib, sizes=(64, 32, 16)) -> None:
    from quantbench.engines import selective

    worst = {}
    for n in sizes:
        rows, spent = seconds(lambda: selective.layer_errors(source, [a[:n] for a in calib], top=10))
        worst[n] = [r["name"] for r in rows]
        print(f"per-layer error on {n:>2} samples: {spent:5.1f} s   ten worst shared with {sizes[0]}: "
              f"{len(set(worst[n]) & set(worst[sizes[0]]))} of {len(worst[sizes[0]])}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cache", default="/tmp/qb-scale")
    p.add_argument("--parts", default="export,lq,layers")
    p.add_argument("--model", help="a .keras file instead of MobileNetV2")
    p.add_argument("--calib", help="its calibration inputs: .npy, or .npz with x (200 are used)")
    p.add_argument("--smoke", action="store_true", help="the digits CNN, one technique and a family of two: checks "
                   "the script runs")
    a = p.parse_args()
    if a.model is None and not a.smoke:
        import scale

        scale.build(Path(a.cache))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from quantbench.core import quiet
    from quantbench.inputs import data, models

    quiet.configure()
    if a.smoke and a.model is None:
        source, calib = models.from_keras(models.reference_cnn()), [data.digits().x_train[:64]]
    else:
        source = models.load_model(a.model or Path(a.cache) / "mobilenetv2.keras")
        raw = np.load(a.calib or Path(a.cache) / "calib200.npy")
        calib = [np.asarray(raw["x"] if hasattr(raw, "files") else raw, np.float32)[:200]]
    print(f"{source.name}, {len(calib[0])} calibration samples; load average {os.getloadavg()[0]:.1f}", flush=True)
    parts = a.parts.split(",")
    if "export" in parts:
        export_part(source, calib, a.smoke)  # leaves the export in place for the parts below
    else:  # the study converts from the export: so do the parts below
        folder = Path(tempfile.mkdtemp()) / "savedmodel"
        source.exported = folder if source.export_for_converter(folder) else None
    if "lq" in parts:
        lq_part(source, calib)
    if "layers" in parts:
        layers_part(source, calib, (16, 8) if a.smoke else (64, 32, 16))


if __name__ == "__main__":
    main()
