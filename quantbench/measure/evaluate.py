"""Accuracy and fidelity of a variant's outputs, against labels and against the float model."""
from __future__ import annotations

import numpy as np

from ..core import stats
from ..core.errors import InputError
from ..record.results import BASELINE
from .outputs import KINDS, RAW_LIMIT, TaskSpec, Truth, custom_metric, infer_unlabelled, read_labels, score


def top1(outputs) -> np.ndarray:
    outputs = np.asarray(outputs)
    return outputs.reshape(len(outputs), -1).argmax(axis=1)


def accuracy(outputs, labels: np.ndarray) -> float:
    """Fraction of samples whose top-1 class is the label."""
    return float(np.mean(top1(outputs) == np.asarray(labels)))


def agreement(outputs, reference) -> float:
    """Fraction of samples whose top-1 class matches the reference model's."""
    return float(np.mean(top1(outputs) == top1(reference)))


def is_classifier(shape) -> bool:
    """An output of shape (N, classes) with at least two classes can hold class scores."""
    return len(shape) == 2 and shape[-1] >= 2


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

    Kept per output: top-1 classes and the 5 best (outputs shaped (N, classes)), the raw values of outputs of at
    most `outputs.RAW_LIMIT` values per sample that are not probability rows (what binary, multi-label and
    regression metrics are computed from, once the labels' kinds are known), signal and noise power for SQNR, the sum of per-sample cosine
    similarities, the largest absolute error; KL sums for the first output. Streams of consecutive shards
    `merge` in order. `keep_all` keeps every output's raw values (a user's own metric needs them).
    """

    def __init__(self, keep_all: bool = False):
        self.n = 0
        self.keep_all = keep_all
        self.top1: list = []       # per output: list of int arrays (None for non-class-shaped outputs)
        self.top5: list = []       # per output: list of (n, 5) int arrays (None below 6 classes)
        self.raw: list = []        # per output: list of (n, d) float32 arrays (None where not kept)
        self.shapes: list = []     # per output: the per-sample shape
        self.signal: np.ndarray | None = None
        self.noise: np.ndarray | None = None
        self.cosine: np.ndarray | None = None
        self.max_err: np.ndarray | None = None
        self.kl_sum = 0.0
        # the float model's own properties, read only on the reference's stream
        self.distribution: list | None = None   # per output: every row so far is a probability row
        self.unit: list | None = None           # per output: every value so far lies in [0, 1]
        self.first_row: list | None = None
        self.max_dev: np.ndarray | None = None
        self.max_abs: np.ndarray | None = None

    def update(self, outputs: list, reference: list) -> "Stream":
        outs = [np.asarray(o) for o in outputs]
        refs = [np.asarray(r) for r in reference]
        k = len(refs)
        if self.signal is None:
            self.top1 = [[] if is_classifier(r.shape) else None for r in refs]
            self.top5 = [[] if is_classifier(r.shape) and r.shape[-1] > 5 else None for r in refs]
            # probability rows are scored by their top-1 and top-5 alone: their values are not kept (a 1,000-class
            # output over 50,000 images would hold 200 MB per variant)
            self.raw = [[] if self.keep_all or (int(np.prod(r.shape[1:])) <= RAW_LIMIT and not (
                is_classifier(r.shape) and stats.is_distribution(r))) else None for r in refs]
            self.shapes = [tuple(int(d) for d in r.shape[1:]) for r in refs]
            self.signal, self.noise, self.max_err, self.cosine = np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k)
            self.distribution = [is_classifier(r.shape) for r in refs]
            self.unit = [True] * k
            self.first_row = [r[:1].reshape(1, -1).astype(np.float64) for r in refs]
            self.max_dev, self.max_abs = np.zeros(k), np.zeros(k)
        for i, (o, r) in enumerate(zip(outs, refs)):
            o64 = o.reshape(len(o), -1).astype(np.float64)
            r64 = r.reshape(len(r), -1).astype(np.float64)
            diff = r64 - o64
            self.signal[i] += float(np.sum(r64 * r64))
            self.noise[i] += float(np.sum(diff * diff))
            self.cosine[i] += float(np.sum(cosines(o64, r64)))
            if diff.size:
                self.max_err[i] = max(self.max_err[i], float(np.max(np.abs(diff))))
                self.max_dev[i] = max(self.max_dev[i], float(np.max(np.abs(r64 - self.first_row[i]))))
                self.max_abs[i] = max(self.max_abs[i], float(np.max(np.abs(r64))))
                self.unit[i] = self.unit[i] and bool(np.min(r64) >= 0 and np.max(r64) <= 1)
            if self.top1[i] is not None:
                self.top1[i].append(top1(o))
                self.distribution[i] = self.distribution[i] and stats.is_distribution(r)
            if self.top5[i] is not None:
                self.top5[i].append(np.argsort(-o.reshape(len(o), -1), axis=1)[:, :5])
            if self.raw[i] is not None:
                self.raw[i].append(o.reshape(len(o), -1).astype(np.float32))
        if is_classifier(refs[0].shape):
            self.kl_sum += stats.mean_kl(refs[0], outs[0]) * len(outs[0]) if len(outs[0]) else 0.0
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
            if self.top5[i] is not None:
                self.top5[i] += later.top5[i]
            # kept by both shards or by neither (each decided on its first chunk): values from one shard alone
            # would not line up with the samples, so the output is then scored by fidelity
            self.raw[i] = None if self.raw[i] is None or later.raw[i] is None else self.raw[i] + later.raw[i]
            self.unit[i] = self.unit[i] and later.unit[i]
            later_dev = later.max_dev[i] if np.array_equal(later.first_row[i], self.first_row[i]) else np.inf
            self.max_dev[i] = max(self.max_dev[i], later_dev)
        self.signal += later.signal
        self.noise += later.noise
        self.cosine += later.cosine
        self.max_err = np.maximum(self.max_err, later.max_err)
        self.max_abs = np.maximum(self.max_abs, later.max_abs)
        self.kl_sum += later.kl_sum
        self.n += later.n
        return self

    def classes(self, i: int) -> np.ndarray:
        return np.concatenate(self.top1[i]) if self.top1[i] else np.empty(0, np.int64)

    def kept(self, i: int) -> dict:
        """What output i's metrics are computed from (see `outputs.score`)."""
        join = lambda parts: None if parts is None else (np.concatenate(parts) if parts else None)  # noqa: E731
        return {"top1": None if self.top1[i] is None else self.classes(i), "top5": join(self.top5[i]),
                "raw": join(self.raw[i]), "sqnr_db": _db(self.signal[i], self.noise[i]),
                "cosine": round(self.cosine[i] / self.n, 6) if self.n else None,
                "max_abs_err": float(self.max_err[i]), "probabilities": bool(self.unit[i])}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity of two (n, d) arrays; 1 where both rows are zero, 0 where one is."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.sum(a * b, axis=1)
    both = (na == 0) & (nb == 0)
    return np.where(both, 1.0, np.where((na == 0) | (nb == 0), 0.0, dot / np.where(na * nb == 0, 1, na * nb)))


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


def truth_of(labels, ref: Stream, names: list[str], spec: TaskSpec) -> Truth:
    """Labels as a Truth: given as one already (per output), or as one array for the first output it fits."""
    if labels is None or isinstance(labels, Truth):
        return labels or Truth()
    shapes = [(None, *shape) for shape in ref.shapes]
    return read_labels({"y": np.asarray(labels)}, names, shapes, spec, "the labels")


def kinds_of(ref: Stream, names: list[str], truth: Truth, spec: TaskSpec) -> list[str]:
    """Each output's task kind: its labels' kind, else forced by --task, else inferred from the float model's
    outputs. A class output whose float model gives one top-1 class for every sample cannot be judged by
    agreement: it is judged by fidelity."""
    stuck = {d["output"] for d in degenerate_from(ref, names, bool(truth))}
    kinds = []
    for i, name in enumerate(names):
        kind = truth.kinds.get(name) or infer_unlabelled(name, (None, *ref.shapes[i]), bool(ref.distribution[i]),
                                                         spec)
        if name not in truth.labels and KINDS[kind].class_like and name in stuck:
            kind = "fidelity"
        kinds.append(kind)
    return kinds


def finish(streams: dict[str, Stream], reference: str, labels=None, names: list[str] | None = None,
           spec: TaskSpec | None = None, metric=None) -> dict:
    """The metrics of every variant from its stream; see `measure` for the fields.

    Args:
        labels: a `outputs.Truth` (labels per output), or one array for the first output it fits, or None.
        spec: how outputs are scored (--task, --threshold, --output).
        metric: (function, name) of a user's own metric, run on every variant's full outputs (the streams must
            keep them: Stream(keep_all=True)).
    """
    ref = streams[reference]
    k = len(ref.signal)
    names = names or [f"output_{i}" for i in range(k)]
    spec = spec or TaskSpec()
    truth = truth_of(labels, ref, names, spec)
    kinds = kinds_of(ref, names, truth, spec)
    ref_kept = [ref.kept(i) for i in range(k)]
    first = next((i for i, name in enumerate(names) if kinds[i] in ("classes", "binary") and name in truth.labels),
                 None)
    probs = kinds[0] == "classes" and bool(ref.distribution[0])
    custom = None
    if metric is not None:
        fn, metric_name = metric
        custom = custom_metric(fn, metric_name, names, truth.labels, {
            name: [s.kept(i)["raw"].reshape(s.n, *s.shapes[i]) for i in range(k)] for name, s in streams.items()},
            reference)
    scored, hits_of = {}, {}  # every variant's outputs scored once; per sample hits of the first labelled one
    for name, s in streams.items():
        outs = []
        for i, out_name in enumerate(names):
            found = score(kinds[i], s.kept(i), ref_kept[i], truth.labels.get(out_name), spec)
            outs.append({"output": out_name, **found, **({} if spec.scored(out_name) else {"scored": False})})
        for o in outs:
            hits = o.pop("_hits", None)
            if first is not None and o is outs[first]:
                hits_of[name] = hits
        scored[name] = outs
    base_hits = hits_of.get(BASELINE)
    class_like = [KINDS[kinds[i]].class_like for i in range(k)]
    result = {}
    for name, s in streams.items():
        outs, hits = scored[name], hits_of.get(name)
        row = {"accuracy": None, "accuracy_ci": None, "drop_ci_pp": None, "accuracy_delta_pp": None,
               "p_vs_float32": None, "top5": None, "agreement": outs[0].get("agreement") if class_like[0] else None,
               "sqnr_db": _db(float(np.sum(s.signal)), float(np.sum(s.noise))),
               "kl": s.kl_sum / s.n if probs and name != reference and s.n else None,
               "fidelity": [{"output": names[i], "agreement": outs[i].get("agreement") if class_like[i] else None,
                             "sqnr_db": outs[i]["sqnr_db"], "max_abs_err": outs[i]["max_abs_err"]} for i in range(k)],
               "outputs": outs + ([custom[name]] if custom else [])}
        if hits is not None:
            o = outs[first]
            row.update(accuracy=o["value"], accuracy_ci=o["ci"], drop_ci_pp=o["loss_ci"], top5=o.get("top5"))
            if base_hits is not None:
                row.update(accuracy_delta_pp=round((int(hits.sum()) - int(base_hits.sum())) / len(hits) * 100, 6),
                           p_vs_float32=stats.mcnemar_exact(hits, base_hits))
        result[name] = row
    return result



def measure(outputs: dict, reference: str, labels=None, names: list[str] | None = None,
            spec: TaskSpec | None = None, metric=None) -> dict[str, dict]:
    """Every output of every variant scored by its task, against the labels and against the reference.

    Args:
        outputs: variant name -> its outputs on the evaluation inputs (a list, one float array per output).
        reference: the name of the float model whose outputs fidelity is measured against.
        labels: a `outputs.Truth`, or class labels (one array) for the first output they fit, or None.
            Changes in accuracy (delta, exact McNemar p) are against BASELINE, None when it is missing.
        names: the output names.

    Returns:
        name -> the Variant fields of the same names: accuracy, accuracy_ci, drop_ci_pp, accuracy_delta_pp,
        p_vs_float32, top5 (the first labelled class or binary output's), agreement, sqnr_db, kl, fidelity, and
        outputs (one scored row per output, `outputs.score`). sqnr_db is None where the outputs equal the
        reference's exactly (infinite SQNR); agreement and kl are None where the first output is not read as
        classes.
    """
    outputs = {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in outputs.items()}
    ref = outputs[reference]
    streams = {name: Stream(keep_all=metric is not None).update(out, ref) for name, out in outputs.items()}
    return finish(streams, reference, labels, names, spec, metric)
