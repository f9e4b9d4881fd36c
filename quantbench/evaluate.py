"""Accuracy and fidelity of a variant's outputs, against labels and against the float model."""
from __future__ import annotations

import numpy as np

from . import stats
from .errors import InputError
from .results import BASELINE


def top1(outputs) -> np.ndarray:
    outputs = np.asarray(outputs)
    return outputs.reshape(len(outputs), -1).argmax(axis=1)


def accuracy(outputs, labels: np.ndarray) -> float:
    """Fraction of samples whose top-1 class is the label."""
    return float(np.mean(top1(outputs) == np.asarray(labels)))


def agreement(outputs, reference) -> float:
    """Fraction of samples whose top-1 class matches the reference model's."""
    return float(np.mean(top1(outputs) == top1(reference)))


def top_k(outputs, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is among the k highest scores."""
    best = np.argsort(-np.asarray(outputs), axis=1)[:, :k]
    return float(np.mean(np.any(best == np.asarray(labels)[:, None], axis=1)))


def is_classifier(shape) -> bool:
    """An output of shape (N, classes) with at least two classes can hold class scores."""
    return len(shape) == 2 and shape[-1] >= 2


def class_outputs(reference: list, labelled: bool) -> set[int]:
    """Indices of the outputs read as classes: probability rows, and the first output when labels are
    given for it (logits too)."""
    found = {i for i, r in enumerate(reference) if is_classifier(r.shape) and stats.is_distribution(r)}
    return found | ({0} if labelled and is_classifier(reference[0].shape) else set())


def non_finite(out) -> int:
    """How many samples of one output hold a NaN or an Inf."""
    out = np.asarray(out)
    return int(np.sum(~np.isfinite(out.reshape(len(out), -1)).all(axis=1))) if out.ndim else 0


def non_finite_error(outputs: list, names: list[str]) -> str | None:
    """Why a variant's outputs cannot be compared with the float model's, which `check_reference` found finite."""
    for name, out in zip(names, outputs):
        bad = non_finite(out)
        if bad:
            return (f"its output {name!r} is NaN or Inf for {bad} of {len(out)} samples, where the float model's is "
                    "finite")
    return None


def check_reference(reference: list, names: list[str], origin: str) -> None:
    """Refuse float-model outputs holding NaN or Inf: every figure of a study is measured against them."""
    for name, out in zip(names, reference):
        bad = non_finite(out)
        if bad:
            raise InputError(f"The float model's output {name!r} is NaN or Inf for {bad} of {len(out)} samples of "
                             f"{origin}, so no figure can be measured against it. Expected finite outputs. Fix: check "
                             "the data's values and preprocessing, and the model's weights (a corrupt file gives "
                             "NaN).")


def _finite(value: float) -> float | None:
    return None if np.isinf(value) else round(float(value), 3)


def fidelity(outputs: list, reference: list, names: list[str], classes: set[int]) -> list[dict]:
    """Per output: top-1 agreement (class outputs), SQNR in dB (None when identical), max absolute error."""
    return [{
        "output": name,
        "agreement": agreement(out, ref) if i in classes else None,
        "sqnr_db": _finite(stats.sqnr_db(ref, out)),
        "max_abs_err": float(np.max(np.abs(np.asarray(out, np.float64) - ref))) if np.size(ref) else 0.0,
    } for i, (name, out, ref) in enumerate(zip(names, outputs, reference))]


def measure(outputs: dict, reference: str, labels=None, names: list[str] | None = None) -> dict[str, dict]:
    """Accuracy with its interval and test, and fidelity to the reference, for every variant.

    Args:
        outputs: variant name -> its outputs on the evaluation inputs (a list, one float array per output).
        reference: the name of the float model whose outputs fidelity is measured against.
        labels: class labels for the first output, or None; without them the accuracy fields are None.
            Changes in accuracy (delta, exact McNemar p) are against BASELINE, None when it is missing.
        names: the output names, for the per-output fidelity rows.

    Returns:
        name -> the Variant fields of the same names: accuracy, accuracy_ci, accuracy_delta_pp,
        p_vs_float32, top5, agreement, sqnr_db, kl, fidelity. sqnr_db is None where the outputs equal the
        reference's exactly (infinite SQNR); agreement and kl are None where the first output is not
        read as classes.
    """
    outputs = {k: v if isinstance(v, (list, tuple)) else [v] for k, v in outputs.items()}
    ref = outputs[reference]
    names = names or [f"output_{i}" for i in range(len(ref))]
    labelled = labels is not None and is_classifier(ref[0].shape)
    classes = class_outputs(ref, labelled)
    flat = lambda outs: np.concatenate([np.asarray(a, np.float64).reshape(len(a), -1) for a in outs], axis=1)  # noqa: E731
    ref_flat, probs = flat(ref), 0 in classes and stats.is_distribution(ref[0])
    labels = np.asarray(labels) if labelled else None
    correct = {} if labels is None else {name: top1(out[0]) == labels for name, out in outputs.items()}
    base = correct.get(BASELINE)
    result = {}
    n = len(labels) if labels is not None else 0
    for name, out in outputs.items():
        row = {"accuracy": None, "accuracy_ci": None, "drop_ci_pp": None, "accuracy_delta_pp": None,
               "p_vs_float32": None,
               "top5": None, "agreement": agreement(out[0], ref[0]) if 0 in classes else None,
               "sqnr_db": _finite(stats.sqnr_db(ref_flat, flat(out))),
               "kl": stats.mean_kl(ref[0], out[0]) if probs and name != reference else None,
               "fidelity": fidelity(out, ref, names, classes)}
        if labels is not None:
            k = int(correct[name].sum())
            row.update(accuracy=k / n, accuracy_ci=stats.wilson(k, n),
                       drop_ci_pp=stats.paired_drop_ci(correct[reference], correct[name]))
            if ref[0].shape[-1] > 5:
                row["top5"] = top_k(out[0], labels, 5)
            if base is not None:
                row.update(accuracy_delta_pp=round((k - int(base.sum())) / n * 100, 6),
                           p_vs_float32=stats.mcnemar_exact(correct[name], base))
        result[name] = row
    return result
