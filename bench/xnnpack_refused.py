"""A real-size file XNNPACK refuses: does `quantbench bench` say so, and what do LiteRT's built-in kernels cost?

Usage: PYTHONPATH=. .venv/bin/python bench/xnnpack_refused.py [--out /tmp/xnnpack-refused] [--time-budget 30]
                                                                [--smoke]

Converts `keras.applications.MobileNetV2(weights=None)` at 224x224 to int8-only (16 seeded random calibration
images in [-1, 1]), then writes a copy whose input tensor's zero-point is 200, outside int8's range: XNNPACK
refuses that file and LiteRT's built-in kernels run it (the case the fuzz harness found in bit-flipped files).
Then runs `quantbench bench` of both files in a child process, under /usr/bin/time for its wall time and peak
memory (the bench is a single process), and prints its table and notes. --smoke: the digits CNN (untrained)
instead of MobileNetV2, 0.5 s of timing.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/xnnpack-refused")
    p.add_argument("--time-budget", default="30")
    p.add_argument("--smoke", action="store_true", help="the digits CNN, 0.5 s of timing: checks the script runs")
    a = p.parse_args()
    if a.smoke:
        a.time_budget = "0.5"
        if not Path("/usr/bin/time").exists():
            print("skipped: /usr/bin/time is not installed (Debian package `time`)")
            return
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    from quantbench.engines.converter import convert
    from quantbench.runtime.tf import import_tensorflow

    import_tensorflow()
    import keras
    from tensorflow.lite.tools import flatbuffer_utils as fu

    if a.smoke:
        from quantbench.inputs import models

        model = models.reference_cnn()
    else:
        model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    calib = np.random.default_rng(0).uniform(-1, 1, (16, *model.input_shape[1:])).astype(np.float32)
    conv = convert(model, "int8-only", calib)
    print(f"int8-only converted in {conv.seconds:.1f} s, {len(conv.content) / 2 ** 20:.2f} MiB", flush=True)
    (out / "int8-only.tflite").write_bytes(conv.content)
    flat = fu.convert_bytearray_to_object(bytearray(conv.content))
    sg = flat.subgraphs[0]
    sg.tensors[sg.inputs[0]].quantization.zeroPoint[0] = 200
    (out / "input-zero-point-200.tflite").write_bytes(bytes(fu.convert_object_to_bytearray(flat)))

    cmd = ["/usr/bin/time", "-f", "wall %e s, peak RSS %M KiB", sys.executable, "-m", "quantbench", "bench",
           str(out / "int8-only.tflite"), str(out / "input-zero-point-200.tflite"), "--time-budget", a.time_budget,
           "--json", str(out / "bench.json"), "--force"]
    print("$ " + " ".join(cmd[3:]), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(proc.stdout)
    print(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "", f"(exit {proc.returncode})")


if __name__ == "__main__":
    main()
