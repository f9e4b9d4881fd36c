"""Datasets: the bundled digits split, and calibration sampling kept apart from evaluation data."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits() -> Split:
    """scikit-learn's bundled 8x8 digits, split as the reference article does (25 % test, random_state 42)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images[..., None].astype(np.float32)  # (1797, 8, 8, 1), values 0..16
    y = d.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42)
    return Split(x_train, y_train, x_test, y_test)


def calibration_sample(x, size: int, seed: int):
    """Up to `size` samples drawn without replacement, seeded; `x` is an array or a list of arrays."""
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    n = len(arrays[0])
    if size < 1:
        raise InputError(f"--calib-size is {size}. Expected a positive number of calibration samples. "
                         "Fix: pass --calib-size 200 (the default) or another count ≥ 1.")
    if size > n:
        raise InputError(f"--calib-size {size} is larger than the {n} samples available for calibration. "
                         f"Expected at most {n}. Fix: pass --calib-size {n} or fewer, or give more data.")
    idx = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    picked = [a[idx] for a in arrays]
    return picked if isinstance(x, (list, tuple)) else picked[0]
