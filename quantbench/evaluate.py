"""Accuracy and fidelity of a variant's outputs, against labels and against the float model."""
from __future__ import annotations

import numpy as np


def top1(outputs: np.ndarray) -> np.ndarray:
    return np.asarray(outputs).reshape(len(outputs), -1).argmax(axis=1)


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose top-1 class is the label."""
    return float(np.mean(top1(outputs) == np.asarray(labels)))


def agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of samples whose top-1 class matches the reference model's."""
    return float(np.mean(top1(outputs) == top1(reference)))


def is_classifier(shape) -> bool:
    """An output of shape (N, classes) with at least two classes can hold class scores."""
    return len(shape) == 2 and shape[-1] >= 2


def is_distribution(values: np.ndarray) -> bool:
    """Class probabilities: shape (N, classes), non-negative rows that sum to 1."""
    v = np.asarray(values)
    return is_classifier(v.shape) and len(v) > 0 and bool(
        np.all(v >= -1e-6) and np.allclose(v.sum(axis=1), 1.0, atol=1e-3))


def top_k(outputs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is among the k highest scores."""
    best = np.argsort(-np.asarray(outputs), axis=1)[:, :k]
    return float(np.mean(np.any(best == np.asarray(labels)[:, None], axis=1)))


def sqnr_db(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of outputs against the reference, in dB (inf when identical)."""
    ref = np.asarray(reference, np.float64)
    noise = np.sum((np.asarray(outputs, np.float64) - ref) ** 2)
    signal = np.sum(ref ** 2)
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(signal / noise)) if signal > 0 else float("-inf")


def fidelity(outputs: list, reference: list, names: list[str], classes: set[int]) -> list[dict]:
    """Per output: top-1 agreement (for the class outputs, by index), SQNR in dB, and max absolute error."""
    rows = []
    for i, (name, out, ref) in enumerate(zip(names, outputs, reference)):
        rows.append({
            "output": name,
            "agreement": agreement(out, ref) if i in classes else None,
            "sqnr_db": sqnr_db(out, ref),
            "max_abs_err": float(np.max(np.abs(np.asarray(out, np.float64) - ref))) if ref.size else 0.0,
        })
    return rows
