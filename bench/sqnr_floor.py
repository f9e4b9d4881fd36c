"""Where to put --min-sqnr: SQNR against the float model beside the task metric's loss, for every variant of
models whose outputs have labels (binary, regression, two heads, multi-label, a 10-class CNN).

For each labelled output of each variant it prints the SQNR (dB) and whether the task's own budget (1 pp of
accuracy or F1, 5 % of MAE) was met. A good SQNR floor for label-less outputs passes the variants the labels
pass and refuses those the labels refuse.

    python bench/sqnr_floor.py [--smoke]     # --smoke: the first model, one epoch, float32 and dynamic
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantbench.inputs import data, models  # noqa: E402
from quantbench.measure.outputs import Budget, verdicts  # noqa: E402
from quantbench.study.pipeline import compare  # noqa: E402
from quantbench.study.config import StudyConfig


def digits_model(d, head, y, loss, epochs, seed=0):
    import keras

    models.seed_everything(seed)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(keras.layers.Rescaling(1 / 16)(inputs)))
    model = keras.Model(inputs, head(h))
    model.compile("adam", loss)
    model.fit(d.x_train, y, epochs=epochs, verbose=0)
    return model


def cases(epochs: int):
    import keras
    from sklearn.datasets import load_diabetes

    d = data.digits()
    tags = lambda y: np.stack([y >= 5, y % 2 == 0, np.isin(y, (0, 6, 8, 9))], 1).astype("float32")  # noqa: E731
    yield "binary", digits_model(d, lambda h: keras.layers.Dense(1, activation="sigmoid", name="high")(h),
                                 (d.y_train >= 5).astype("float32"), "binary_crossentropy", epochs), \
        d.x_test, {"y": (d.y_test >= 5).astype(np.int64)}, d.x_train[:200]
    yield "multilabel", digits_model(d, lambda h: keras.layers.Dense(3, activation="sigmoid", name="tags")(h),
                                     tags(d.y_train), "binary_crossentropy", epochs), \
        d.x_test, {"y": tags(d.y_test).astype(np.int64)}, d.x_train[:200]
    amp = d.x_train.mean(axis=(1, 2, 3))
    yield "two-heads", digits_model(
        d, lambda h: {"cls": keras.layers.Dense(10, activation="softmax", name="cls")(h),
                      "amp": keras.layers.Dense(1, name="amp")(h)},
        {"cls": d.y_train, "amp": amp}, {"cls": "sparse_categorical_crossentropy", "amp": "mse"}, epochs), \
        d.x_test, {"y_cls": d.y_test, "y_amp": d.x_test.mean(axis=(1, 2, 3))}, d.x_train[:200]
    x, y = load_diabetes(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    models.seed_everything(0)
    inputs = keras.Input((10,), name="features")
    reg = keras.Model(inputs, keras.layers.Dense(1, name="progression")(keras.layers.Dense(32, activation="relu")(inputs)))
    reg.compile(keras.optimizers.Adam(0.01), "mae")
    reg.fit(x[:300], y[:300], epochs=6 * epochs, verbose=0)
    yield "regression", reg, x[300:], {"y": y[300:]}, x[:300]
    cnn = models.train(models.reference_cnn(), d.x_train, d.y_train, epochs)
    yield "digits-cnn", cnn, d.x_test, {"y": d.y_test}, d.x_train[:200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one model, one epoch, two techniques: checks the "
                        "script runs")
    args = parser.parse_args()
    techniques = "float32,dynamic" if args.smoke else None
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, x, labels, calib in itertools.islice(cases(1 if args.smoke else 8), 1 if args.smoke else None):
            folder = Path(tmp) / name
            folder.mkdir()
            model.save(folder / "m.keras")
            np.savez(folder / "test.npz", x=x, **labels)
            np.savez(folder / "train.npz", x=calib)
            res = compare(folder / "m.keras", folder / "test.npz", folder / "train.npz", folder / "s",
                          StudyConfig(techniques=techniques, time_budget=0.1, workers=0))
            for v in res.variants:
                if not v.ok or v.technique == "keras":
                    continue
                for o, verdict in zip(v.outputs, verdicts(v.outputs, Budget())):
                    rows.append((name, v.technique, o["output"], o["metric"], o["sqnr_db"], verdict["passed"]))
    print(f"{'model':<12} {'technique':<18} {'output':<12} {'metric':<9} {'SQNR dB':>8}  within budget")
    for r in sorted(rows, key=lambda r: (r[4] if r[4] is not None else np.inf)):
        sqnr = "inf" if r[4] is None else f"{r[4]:.1f}"
        print(f"{r[0]:<12} {r[1]:<18} {r[2]:<12} {r[3]:<9} {sqnr:>8}  {'yes' if r[5] else 'NO'}")
    finite = [r for r in rows if r[4] is not None]
    failed = [r[4] for r in finite if not r[5]]
    passed = [r[4] for r in finite if r[5]]
    print(f"\n{len(rows)} labelled outputs of variants; past their task budget: {len(failed)}")
    if failed:
        print(f"highest SQNR among those past the budget: {max(failed):.1f} dB")
    if passed:
        print(f"lowest SQNR among those within it: {min(passed):.1f} dB")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
