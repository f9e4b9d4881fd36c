"""Accuracy and fidelity of a variant's outputs, against labels and against the float model."""
from __future__ import annotations

import numpy as np

from . import stats
from .results import BASELINE

def _first(outputs) -> np.ndarray:
    """The output that carries the class scores: the first one of a multi-output model."""
    return np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)


def _flat(outputs) -> np.ndarray:
    arrays = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return np.concatenate([np.asarray(a, np.float64).reshape(len(a), -1) for a in arrays], axis=1)


def top1(outputs) -> np.ndarray:
    outputs = _first(outputs)
    return outputs.reshape(len(outputs), -1).argmax(axis=1)


def accuracy(outputs, labels: np.ndarray) -> float:
    """Fraction of samples whose top-1 class is the label."""
    return float(np.mean(top1(outputs) == np.asarray(labels)))


def agreement(outputs, reference) -> float:
    """Fraction of samples whose top-1 class matches the reference model's."""
    return float(np.mean(top1(outputs) == top1(reference)))


def measure(outputs: dict, reference: str, labels=None) -> dict[str, dict]:
    """Accuracy with its interval and test, and fidelity to the reference, for every variant.

    Args:
        outputs: variant name -> its outputs on the evaluation inputs (float, dequantized).
        reference: the name of the float model whose outputs fidelity is measured against.
        labels: class labels, or None; without them the accuracy fields are None. Changes in
            accuracy (delta, exact McNemar p) are against BASELINE, and None when it is missing.

    Returns:
        name -> {accuracy, accuracy_ci, accuracy_delta_pp, p_vs_float32, agreement, sqnr_db, kl},
        the Variant fields of the same names. sqnr_db is None where the outputs equal the
        reference's exactly (infinite SQNR) and for the reference itself; kl is None where the
        reference's outputs are not class probabilities.
    """
    ref = outputs[reference]
    ref_flat, probs = _flat(ref), stats.is_distribution(_first(ref))
    labels = None if labels is None else np.asarray(labels)
    correct = {} if labels is None else {name: top1(out) == labels for name, out in outputs.items()}
    base = correct.get(BASELINE)
    result = {}
    for name, out in outputs.items():
        row = {"accuracy": None, "accuracy_ci": None, "accuracy_delta_pp": None, "p_vs_float32": None,
               "agreement": agreement(out, ref), "sqnr_db": None, "kl": None}
        if name != reference:
            sqnr = stats.sqnr_db(ref_flat, _flat(out))
            row["sqnr_db"] = None if np.isinf(sqnr) else round(sqnr, 3)
            row["kl"] = stats.mean_kl(_first(ref), _first(out)) if probs else None
        if labels is not None:
            k, n = int(correct[name].sum()), len(labels)
            row.update(accuracy=k / n, accuracy_ci=stats.wilson(k, n))
            if base is not None:
                row.update(accuracy_delta_pp=round((k - int(base.sum())) / n * 100, 6),
                           p_vs_float32=stats.mcnemar_exact(correct[name], base))
        result[name] = row
    return result
