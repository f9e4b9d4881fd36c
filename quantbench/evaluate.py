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
