"""Size, accuracy and I/O dtypes of every LiteRT Quantizer variant of the demo's float32 model.

Usage: .venv/bin/python -m quantbench demo --out runs/demo --force --quiet
       .venv/bin/python bench/lq.py runs/demo [--calib-size 200] [--seed 0] [--smoke]
Calibration is drawn from the digits train split exactly as the demo draws it; accuracy is on the test split.
--smoke: two techniques, 20 calibration samples.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import quantbench
from quantbench.engines import litert_quantizer as lq, techniques
from quantbench.inputs import data
from quantbench.measure import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_dir", type=Path, help="a `quantbench demo` folder (holds float32.tflite)")
    parser.add_argument("--calib-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="two techniques, 20 calibration samples: checks the "
                        "script runs")
    args = parser.parse_args()
    if args.smoke:
        args.calib_size = 20

    split = data.digits()
    calib = data.calibration_sample(split.x_train, args.calib_size, args.seed)
    float_bytes = (args.demo_dir / "float32.tflite").read_bytes()
    reference = quantbench.load(float_bytes).predict(split.x_test)
    base = evaluate.accuracy(reference, split.y_test)
    print(f"{'technique':18} {'bytes':>7} {'x f32':>6} {'accuracy':>8} {'Δ pp':>6} {'agree':>6}  io")
    print(f"{'float32':18} {len(float_bytes):7d} {1:6.3f} {base:8.4f} {0:6.2f} {1:6.3f}  float32/float32")
    for name in techniques.LQ_TECHNIQUES[:2 if args.smoke else None]:
        conv = lq.quantize(float_bytes, name, calib)
        m = quantbench.load(conv.content)
        out = m.predict(split.x_test)
        acc = evaluate.accuracy(out, split.y_test)
        io = f"{m.inputs[0].dtype}/{m.outputs[0].dtype}"
        print(f"{name:18} {len(conv.content):7d} {len(conv.content) / len(float_bytes):6.3f} {acc:8.4f} "
              f"{(acc - base) * 100:6.2f} {evaluate.agreement(out, reference):6.3f}  {io}  ({conv.seconds:.2f} s)")


if __name__ == "__main__":
    main()
