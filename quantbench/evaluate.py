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
    """Why a variant's outputs cannot be compared with the float model's (NaN or Inf where those are finite)."""
    for name, out in zip(names, outputs):
        bad = non_finite(out)
        if bad:
            return (f"its output {name!r} is NaN or Inf for {bad} of {len(out)} samples, where the float model's is "
                    "finite")
    return None


def check_reference(reference: list, names: list[str], origin: str) -> None:
    """Refuse float-model outputs holding NaN or Inf: every figure of a study is measured against them."""
    check_counts({name: non_finite(out) for name, out in zip(names, reference)}, len(reference[0]), origin)


def check_counts(bad: dict, n: int, origin: str) -> None:
    """`check_reference` from counts of non-finite samples per output, gathered a chunk at a time."""
    for name, count in bad.items():
        if count:
            raise InputError(f"The float model's output {name!r} is NaN or Inf for {count} of {n} samples of "
                             f"{origin}, so no figure can be measured against it. Expected finite outputs. Fix: check "
                             "the data's values and preprocessing, and the model's weights (a corrupt file gives "
                             "NaN).")


def _finite(value: float) -> float | None:
    return None if np.isinf(value) else round(float(value), 3)


def _db(signal: float, noise: float) -> float | None:
    if noise == 0.0:
        return None  # identical outputs: infinite SQNR
    return _finite(-np.inf if signal == 0.0 else 10 * np.log10(signal / noise))


class Stream:
    """One variant's outputs against the float model's, a chunk at a time: what the metrics need and no more.

    Kept per output: top-1 classes (outputs shaped (N, classes)), signal and noise power for SQNR, the largest
    absolute error; for the first output, KL sums and top-5 hits. Memory is a few numbers per sample, whatever
    the evaluation set's size; streams of consecutive shards `merge` in order.
    """

    def __init__(self):
        self.n = 0
        self.top1: list = []       # per output: list of int arrays (None for non-class-shaped outputs)
        self.signal: np.ndarray | None = None
        self.noise: np.ndarray | None = None
        self.max_err: np.ndarray | None = None
        self.kl_sum = 0.0
        self.top5: list = []       # chunks of bool: label among the first output's 5 best
        # the float model's own properties, read only on the reference's stream
        self.distribution: list | None = None   # per output: every row so far is a probability row
        self.first_row: list | None = None
        self.max_dev: np.ndarray | None = None
        self.max_abs: np.ndarray | None = None

    def update(self, outputs: list, reference: list, labels=None) -> "Stream":
        outs = [np.asarray(o) for o in outputs]
        refs = [np.asarray(r) for r in reference]
        k = len(refs)
        if self.signal is None:
            self.top1 = [[] if is_classifier(r.shape) else None for r in refs]
            self.signal, self.noise, self.max_err = np.zeros(k), np.zeros(k), np.zeros(k)
            self.distribution = [is_classifier(r.shape) for r in refs]
            self.first_row = [r[:1].reshape(1, -1).astype(np.float64) for r in refs]
            self.max_dev, self.max_abs = np.zeros(k), np.zeros(k)
        for i, (o, r) in enumerate(zip(outs, refs)):
            o64 = o.reshape(len(o), -1).astype(np.float64)
            r64 = r.reshape(len(r), -1).astype(np.float64)
            diff = r64 - o64
            self.signal[i] += float(np.sum(r64 * r64))
            self.noise[i] += float(np.sum(diff * diff))
            if diff.size:
                self.max_err[i] = max(self.max_err[i], float(np.max(np.abs(diff))))
                self.max_dev[i] = max(self.max_dev[i], float(np.max(np.abs(r64 - self.first_row[i]))))
                self.max_abs[i] = max(self.max_abs[i], float(np.max(np.abs(r64))))
            if self.top1[i] is not None:
                self.top1[i].append(top1(o))
                self.distribution[i] = self.distribution[i] and stats.is_distribution(r)
        if is_classifier(refs[0].shape):
            self.kl_sum += stats.mean_kl(refs[0], outs[0]) * len(outs[0]) if len(outs[0]) else 0.0
            if labels is not None:
                best = np.argsort(-outs[0], axis=1)[:, :5]
                self.top5.append(np.any(best == np.asarray(labels)[:, None], axis=1))
        self.n += len(outs[0])
        return self

    def merge(self, later: "Stream") -> "Stream":
        """This stream followed by `later` (the next shard)."""
        if later.signal is None:
            return self
        if self.signal is None:
            return later
        for i in range(len(self.signal)):
            if self.top1[i] is not None:
                self.top1[i] += later.top1[i]
                self.distribution[i] = self.distribution[i] and later.distribution[i]
            later_dev = later.max_dev[i] if np.array_equal(later.first_row[i], self.first_row[i]) else np.inf
            self.max_dev[i] = max(self.max_dev[i], later_dev)
        self.signal += later.signal
        self.noise += later.noise
        self.max_err = np.maximum(self.max_err, later.max_err)
        self.max_abs = np.maximum(self.max_abs, later.max_abs)
        self.kl_sum += later.kl_sum
        self.top5 += later.top5
        self.n += later.n
        return self

    def classes(self, i: int) -> np.ndarray:
        return np.concatenate(self.top1[i]) if self.top1[i] else np.empty(0, np.int64)


def degenerate_from(ref: Stream, names: list[str], labelled: bool = False) -> list[dict]:
    """The float model's outputs that cannot tell variants apart: no variance over the samples, or (class
    outputs) the same top-1 class for every sample, which makes top-1 agreement 100 % for any variant."""
    if ref.n < 2:
        return []
    found = []
    classes = _classes(ref, labelled)
    for i, name in enumerate(names):
        if ref.max_dev[i] <= 1e-6 * max(ref.max_abs[i], 1e-30):
            found.append({"output": name, "why": f"the float model's output {name!r} is the same for all "
                          f"{ref.n} evaluation samples (no variance), so fidelity figures cannot tell variants "
                          "apart"})
        elif i in classes and len(np.unique(ref.classes(i))) == 1:
            found.append({"output": name, "why": f"the float model's top-1 class on {name!r} is "
                          f"{int(ref.classes(i)[0])} for all {ref.n} evaluation samples, so top-1 agreement is "
                          "100 % for any variant and means nothing"})
    return found


def degenerate(reference: list, names: list[str], labelled: bool = False) -> list[dict]:
    """`degenerate_from` for outputs held in memory."""
    return degenerate_from(Stream().update(reference, reference), names, labelled)


def _classes(ref: Stream, labelled: bool) -> set[int]:
    found = {i for i, d in enumerate(ref.distribution or []) if d}
    return found | ({0} if labelled and ref.top1 and ref.top1[0] is not None else set())


def finish(streams: dict[str, Stream], reference: str, labels=None, names: list[str] | None = None) -> dict:
    """The metrics of every variant from its stream; see `measure` for the fields."""
    ref = streams[reference]
    k = len(ref.signal)
    names = names or [f"output_{i}" for i in range(k)]
    labelled = labels is not None and ref.top1[0] is not None
    classes = _classes(ref, labelled)
    probs = 0 in classes and bool(ref.distribution[0])
    labels = np.asarray(labels) if labelled else None
    ref_top1 = {i: ref.classes(i) for i in classes}
    correct = {} if labels is None else {name: s.classes(0) == labels for name, s in streams.items()}
    base = correct.get(BASELINE)
    n = len(labels) if labels is not None else 0
    result = {}
    for name, s in streams.items():
        agree = {i: float(np.mean(s.classes(i) == ref_top1[i])) for i in classes}
        row = {"accuracy": None, "accuracy_ci": None, "drop_ci_pp": None, "accuracy_delta_pp": None,
               "p_vs_float32": None, "top5": None, "agreement": agree.get(0),
               "sqnr_db": _db(float(np.sum(s.signal)), float(np.sum(s.noise))),
               "kl": s.kl_sum / s.n if probs and name != reference and s.n else None,
               "fidelity": [{"output": names[i], "agreement": agree.get(i), "sqnr_db": _db(s.signal[i], s.noise[i]),
                             "max_abs_err": float(s.max_err[i])} for i in range(k)]}
        if labels is not None:
            hits = int(correct[name].sum())
            row.update(accuracy=hits / n, accuracy_ci=stats.wilson(hits, n),
                       drop_ci_pp=stats.paired_drop_ci(correct[reference], correct[name]))
            if ref.top1[0] is not None and len(ref.first_row[0][0]) > 5 and s.top5:
                row["top5"] = float(np.mean(np.concatenate(s.top5)))
            if base is not None:
                row.update(accuracy_delta_pp=round((hits - int(base.sum())) / n * 100, 6),
                           p_vs_float32=stats.mcnemar_exact(correct[name], base))
        result[name] = row
    return result


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
    outputs = {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in outputs.items()}
    ref = outputs[reference]
    streams = {name: Stream().update(out, ref, labels) for name, out in outputs.items()}
    return finish(streams, reference, labels, names)
