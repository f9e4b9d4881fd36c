"""Where post-training int8 loses accuracy and QAT wins it back: float, int8-only and qat-int8 on digits.

Usage: .venv/bin/python bench/qat.py [--spreads 1,100,1000] [--seeds 0] [--epochs 3] [--smoke]

The case: a small ReLU CNN trained on digits, then rescaled without changing its function — output
channel c of the first convolution times f_c, input channel c of the second divided by f_c (ReLU is
positively homogeneous), f_c log-spaced from 1 to the spread. The first feature map's channels then span
ranges `spread` times apart, as in depthwise layers without BatchNorm. int8 activations are per tensor,
so the small channels get few of the 256 levels. Spread 1 is the untouched control. --smoke: spread 100 only,
one epoch of training and one of QAT, 20 calibration samples.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from quantbench.engines.converter import convert
from quantbench.engines.qat import qat
from quantbench.inputs import data, models
from quantbench.measure import evaluate
from quantbench.runtime.litert import LiteModel


def trained_cnn(split, seed: int, epochs: int = 10):
    import keras

    models.seed_everything(seed)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, activation="relu", name="first")(inputs)
    h = keras.layers.Conv2D(16, 3, activation="relu", name="second")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
    return models.train(model, split.x_train, split.y_train, epochs=epochs)


def spread_channels(model, spread: float) -> None:
    """Rescale the first feature map's channels over `spread`; the float function stays the same."""
    first, second = model.get_layer("first"), model.get_layer("second")
    k1, b1 = first.get_weights()
    k2, b2 = second.get_weights()
    f = np.logspace(0, np.log10(spread), k1.shape[-1]).astype(np.float32)
    first.set_weights([k1 * f, b1 * f])
    second.set_weights([k2 / f[None, None, :, None], b2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spreads", default="1,100,1000")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=3, help="QAT epochs")
    parser.add_argument("--calib-size", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="spread 100, one epoch each: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.spreads, args.seeds, args.epochs, args.calib_size = "100", "0", 1, 20
    split = data.digits()
    calib = data.calibration_sample(split.x_train, args.calib_size, 0)
    print("| seed | spread | keras % | int8-only % | qat-int8 % | int8-only Δ pp | qat-int8 Δ pp | QAT s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for seed in (int(s) for s in args.seeds.split(",")):
        base = trained_cnn(split, seed, 1 if args.smoke else 10)
        weights = base.get_weights()
        for spread in (float(s) for s in args.spreads.split(",")):
            base.set_weights(weights)
            spread_channels(base, spread)
            acc = {"keras": evaluate.accuracy(base.predict(split.x_test, verbose=0), split.y_test)}
            ptq = convert(base, "int8-only", calib).content
            acc["int8-only"] = evaluate.accuracy(LiteModel(ptq).predict(split.x_test), split.y_test)
            start = time.perf_counter()
            result = qat(base, split.x_train, split.y_train, epochs=args.epochs, calib=calib, seed=seed)
            seconds = time.perf_counter() - start
            acc["qat-int8"] = evaluate.accuracy(LiteModel(result.content).predict(split.x_test), split.y_test)
            d = {k: (v - acc["keras"]) * 100 for k, v in acc.items()}
            print(f"| {seed} | {spread:g}× | {acc['keras'] * 100:.2f} | {acc['int8-only'] * 100:.2f} | "
                  f"{acc['qat-int8'] * 100:.2f} | {d['int8-only']:+.2f} | {d['qat-int8']:+.2f} | {seconds:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
