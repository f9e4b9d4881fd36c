"""Every output of a model judged by what it does: its task kind, its labels, its metric with an interval and a
paired test against the float model, and the gate a variant must pass on it.

A kind is an object in a registry (`KINDS`): it says which labels fit an output, reads them, and scores a
variant's output. A gate (`GATES`, keyed by the metric that decides) says whether a scored output stays within
the user's budget, in whole samples where the metric counts samples. A variant's standing is its worst output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..core import stats
from ..core.errors import InputError

RAW_LIMIT = 1024        # values per sample an output may have for its raw values to be kept (labels are scored on
                        # them at the end); larger outputs keep top-1/top-5 classes and fidelity sums only
BOOTSTRAP = 1000        # paired bootstrap resamples for the F1 and regression-error intervals (seeded)
MIN_SQNR_DB = 30.0      # the default floor for outputs judged by fidelity: bench/sqnr_floor.py found every variant
                        # that missed its accuracy budget at ≤ 22.1 dB and every one within it at ≥ 29.3 dB
TOLERANCE = 1e-9        # relative slack for gates on continuous metrics (MAE sums), for float rounding only


BUDGET_WORDS = {"--max-accuracy-drop": ("percentage points from 0 to 100", 1),
                "--min-agreement": ("a percentage from 0 to 100", 99), "--min-sqnr": ("a finite number of dB", 30)}


@dataclass(frozen=True)
class Budget:
    """What a variant may lose against the float model, per kind of output."""

    max_drop_pp: float = 1.0              # classes, binary (accuracy), multilabel (F1): points
    max_error_increase_pct: float = 5.0   # regression: MAE increase, % of the float model's MAE
    min_sqnr_db: float = MIN_SQNR_DB      # outputs judged by fidelity (no labels, or --task NAME=fidelity)
    min_agreement_pct: float = 99.0       # class outputs without labels: top-1 (decision) agreement, %
    max_metric_drop: float | None = None  # --metric: the user's own metric, in its units

    def __post_init__(self):
        for name, value, low, high in (("--max-accuracy-drop", self.max_drop_pp, 0, 100),
                                       ("--max-error-increase", self.max_error_increase_pct, 0, math.inf),
                                       ("--min-sqnr", self.min_sqnr_db, -math.inf, math.inf),
                                       ("--min-agreement", self.min_agreement_pct, 0, 100),
                                       ("--max-metric-drop", self.max_metric_drop, 0, math.inf)):
            if value is None and name == "--max-metric-drop":
                continue
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                                and low <= value <= high):
                unit, example = BUDGET_WORDS.get(name, ("a finite number ≥ 0", 1))
                raise InputError(f"{name} is {value!r}. Expected {unit}. Fix: pass, for example, {name} {example}.")


@dataclass(frozen=True)
class TaskSpec:
    """How outputs are scored, from the command line: kinds forced per output (--task NAME=KIND), the decision
    threshold for binary and multi-label outputs (--threshold), and the outputs scored (--output)."""

    overrides: tuple = ()            # ((output name, kind name), ...)
    threshold: float | None = None   # default: 0.5 for probabilities, 0 for logits
    only: tuple | None = None        # None: every output

    def __post_init__(self):
        """Kinds that do not exist and a threshold that is not a number are refused when the spec is made, before
        the model is loaded; output names need the model (`check`)."""
        for name, kind in self.overrides:
            if kind not in KINDS:
                raise InputError(f"--task {name}={kind}: unknown kind {kind!r}. Expected one of: "
                                 f"{', '.join(KINDS)}. Fix: pass --task {name}=classes, for example.")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise InputError(f"--threshold is {self.threshold}. Expected a finite number. Fix: pass --threshold 0.5.")

    def kind_of(self, name: str) -> str | None:
        return dict(self.overrides).get(name)

    def check(self, output_names) -> "TaskSpec":
        """Refuse names that are not the model's outputs, before any work."""
        known = list(output_names)
        for name in [n for n, _ in self.overrides] + list(self.only or ()):
            if name not in known:
                raise InputError(f"No output named {name!r} in the model (its outputs: {', '.join(known)}). "
                                 "Expected one of those names in --task and --output. Fix: use the model's own "
                                 "output names (`quantbench inspect` lists them for a .tflite).")
        return self

    def scored(self, name: str) -> bool:
        return self.only is None or name in self.only


def parse_tasks(items) -> tuple:
    """`--task NAME=KIND` values as ((name, kind), ...)."""
    pairs = []
    for item in items or []:
        name, sep, kind = str(item).partition("=")
        if not sep or not name or not kind:
            raise InputError(f"--task {item!r} is not NAME=KIND. Expected an output name and a kind, e.g. "
                             f"--task amp=regression (kinds: {', '.join(KINDS)}). Fix: write it as NAME=KIND.")
        pairs.append((name.strip(), kind.strip()))
    return tuple(pairs)


# ---- labels ----------------------------------------------------------------------------------------------

def _per_sample(shape) -> tuple:
    return tuple(shape[1:]) if len(shape) > 0 else ()


def _width(shape) -> int | None:
    dims = _per_sample(shape)
    return None if any(d is None or d < 0 for d in dims) else int(np.prod(dims or (1,)))


def _zero_one(y: np.ndarray) -> bool:
    return y.dtype == bool or (np.issubdtype(y.dtype, np.number) and bool(np.all((y == 0) | (y == 1))))


def _whole(y: np.ndarray) -> bool:
    return np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and bool(
        np.all(np.isfinite(y))) and bool(np.all(y == np.round(y))))


class Kind:
    """One kind of output task. Subclasses fill in `fits`, `read` and `score`."""

    name = ""
    class_like = False     # without labels: judged by top-1 (decision) agreement, not by SQNR
    labelled = True        # takes labels at all

    def fits(self, y: np.ndarray, shape) -> bool:
        """Whether labels `y` can label an output of `shape` (batch dimension first)."""
        raise NotImplementedError

    def read(self, y: np.ndarray, shape, name: str, where: str) -> np.ndarray:
        """The labels normalised for scoring, or an InputError saying what was expected."""
        raise NotImplementedError

    def score(self, var, ref, labels, spec, n):
        """The figures this kind reports (see `score`); by default fidelity: SQNR against the float model."""
        return _fidelity(var)


class Classes(Kind):
    name, class_like = "classes", True
    help = "softmax or logits over ≥ 2 classes: top-1 accuracy (top-5 beyond 5 classes), Wilson interval, McNemar"

    def fits(self, y, shape):
        dims = _per_sample(shape)
        if len(dims) != 1 or (dims[0] is not None and 0 <= dims[0] < 2):
            return False
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            return _whole(y)
        return y.ndim == 2 and (dims[0] in (-1, None) or y.shape[1] == dims[0]) and _zero_one(y) and bool(
            np.all(y.sum(axis=1) == 1))

    def read(self, y, shape, name, where):
        classes = _per_sample(shape)[0] if len(_per_sample(shape)) == 1 else None
        if y.ndim == 2 and y.shape[1] > 1:
            if classes not in (None, -1) and y.shape[1] != classes:
                raise InputError(f"One-hot labels for output {name!r} in {where} have {y.shape[1]} columns but the "
                                 f"output has {classes} classes. Expected shape (N, {classes}). Fix: encode labels "
                                 "for the model's classes.")
            return y.argmax(axis=1).astype(np.int64)
        y = y.reshape(-1)
        if not _whole(y):
            raise InputError(f"Labels for output {name!r} in {where} are not whole class indices. Expected integers "
                             "or one-hot rows. Fix: save y.astype('int64'), or pass --task "
                             f"{name}=regression for float targets.")
        if classes in (None, -1) or classes < 2:
            raise InputError(f"Labels for output {name!r} in {where} are class indices, but the output "
                             f"{tuple(shape)} is not a class output. Expected (N, classes). Fix: pass --task "
                             f"{name}=regression or binary, or drop the labels to measure fidelity.")
        if y.min() < 0 or y.max() >= classes:
            raise InputError(f"Labels for output {name!r} in {where} range from {int(y.min())} to {int(y.max())}, "
                             f"but the output has {classes} classes (0..{classes - 1}). Fix: check the labels "
                             "match the model's classes.")
        return y.astype(np.int64)

    def score(self, var, ref, labels, spec, n):
        if var.get("top1") is None:
            return _fidelity(var)
        found = _agreement(var["top1"], ref["top1"], n)
        if labels is None:
            return _judged_by_agreement(found, n)
        found.update(_accuracy(var["top1"], ref["top1"], labels, n))
        if var.get("top5") is not None:
            found["top5"] = float(np.mean(np.any(var["top5"] == labels[:, None], axis=1)))
        return found


class Thresholded(Kind):
    """Sigmoid or logit outputs: decisions are the values past the threshold; without labels, their agreement
    with the float model's decisions decides; with labels, `labelled` says what."""

    class_like = True

    def labelled(self, mine, theirs, labels, var, n) -> dict:
        raise NotImplementedError

    def score(self, var, ref, labels, spec, n):
        decided = _decisions(var, ref, spec, n)
        if decided is None:
            return _fidelity(var)
        mine, theirs, thr = decided
        found = {"threshold": thr, **_agreement(mine, theirs, n)}
        if labels is None:
            return _judged_by_agreement(found, n)
        return {**found, **self.labelled(mine, theirs, labels, var, n)}


class Binary(Thresholded):
    name = "binary"
    help = "one sigmoid or logit per sample: accuracy at the threshold (Wilson, McNemar) and ROC AUC"

    def fits(self, y, shape):
        return _width(shape) == 1 and y.size == len(y) and _zero_one(y)

    def read(self, y, shape, name, where):
        if _width(shape) != 1:
            raise InputError(f"--task {name}=binary, but output {name!r} has shape {tuple(shape)}. Expected one "
                             f"value per sample, (N,) or (N, 1). Fix: use --task {name}=multilabel for several "
                             "sigmoids.")
        if y.size != len(y) or not _zero_one(y):
            raise InputError(f"Labels for output {name!r} in {where} are not 0/1, one per sample. Expected a "
                             f"binary label per sample. Fix: save (y > 0).astype('int64'), or pass --task "
                             f"{name}=regression for float targets.")
        return y.reshape(-1).astype(np.int64)

    def labelled(self, mine, theirs, labels, var, n):
        return {**_accuracy(mine.reshape(-1), theirs.reshape(-1), labels, n),
                "auc": _auc(labels, var["raw"].reshape(-1))}


class Multilabel(Thresholded):
    name = "multilabel"
    help = "independent sigmoids, several labels per sample: per-label F1 at the threshold, averaged, bootstrap"

    def fits(self, y, shape):
        w = _width(shape)
        return w is not None and w >= 2 and y.ndim >= 2 and y[0].size == w and _zero_one(y)

    def read(self, y, shape, name, where):
        w = _width(shape)
        if w is None or w < 2 or y.ndim < 2 or y[0].size != w or not _zero_one(y):
            raise InputError(f"Labels for output {name!r} in {where} have shape {tuple(y.shape)}; a multi-label "
                             f"output {tuple(shape)} needs 0/1 rows of {w} values. Fix: save one 0/1 row per sample.")
        return y.reshape(len(y), -1).astype(np.uint8)

    def labelled(self, mine, theirs, labels, var, n):
        return _multilabel(mine, theirs, labels)


class Regression(Kind):
    name = "regression"
    help = "float targets: MAE and RMSE, paired bootstrap interval of the MAE change, Wilcoxon signed-rank test"

    def fits(self, y, shape):
        w = _width(shape)
        return w is not None and np.issubdtype(y.dtype, np.number) and y[0].size == w and w <= RAW_LIMIT

    def read(self, y, shape, name, where):
        w = _width(shape)
        if w is None or not np.issubdtype(y.dtype, np.number) or y[0].size != w:
            raise InputError(f"Targets for output {name!r} in {where} have shape {tuple(y.shape)}, but the output "
                             f"is {tuple(shape)}. Expected one row of {w} numbers per sample. Fix: reshape the "
                             "targets to the output's shape.")
        if w > RAW_LIMIT:
            raise InputError(f"Targets for output {name!r} in {where} have {w} values per sample; quantbench scores "
                             f"regression outputs of at most {RAW_LIMIT}. Fix: pass --task {name}=fidelity.")
        y = y.reshape(len(y), -1).astype(np.float64)
        if not np.all(np.isfinite(y)):
            raise InputError(f"Targets for output {name!r} in {where} hold NaN or Inf. Expected finite numbers. "
                             "Fix: clean or drop those samples.")
        return y

    def score(self, var, ref, labels, spec, n):
        if labels is None or var.get("raw") is None:
            return _fidelity(var)
        return _regression(var["raw"], ref["raw"], labels)


class Fidelity(Kind):
    name, labelled = "fidelity", False
    help = "no labels, or an output of unknown task (embeddings, feature maps): SQNR and cosine similarity"

    def fits(self, y, shape):
        return False


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in KINDS:
        raise ValueError(f"A kind named {kind.name!r} is registered already.")
    KINDS[kind.name] = kind
    return kind


for _k in (Classes(), Binary(), Multilabel(), Regression(), Fidelity()):
    register(_k)

# the order in which labels are tried against an output when no --task says: classes before multi-label (one-hot
# rows fit both), binary before regression (0/1 targets fit both)
INFER_ORDER = ("classes", "binary", "multilabel", "regression")


@dataclass(frozen=True)
class Truth:
    """The labels of a data file, per output: normalised arrays and the kind each was read as."""

    labels: dict = field(default_factory=dict)   # output name -> array
    kinds: dict = field(default_factory=dict)    # output name -> kind name

    def __bool__(self) -> bool:
        return bool(self.labels)

    def rows(self, idx) -> "Truth":
        return Truth({k: v[idx] for k, v in self.labels.items()}, dict(self.kinds))


def _kind_for(y: np.ndarray, shape, forced: str | None) -> str | None:
    if forced is not None:
        return forced if KINDS[forced].labelled else None
    return next((k for k in INFER_ORDER if KINDS[k].fits(y, shape)), None)


def read_labels(arrays: dict, output_names, output_shapes, spec: TaskSpec, where: str, y_key: str = "y",
                n: int | None = None) -> Truth:
    """Labels from a data file's arrays, per output.

    `y_<output name>` labels that output; `y` (or `y_key`) labels the first output it fits, in the model's order,
    as class, binary or multi-label labels, else as regression targets.
    Each is read as its output's kind: forced by --task, else inferred from its values and the output's shape.
    """
    names, shapes = list(output_names), [tuple(s) for s in output_shapes]
    spec.check(names)
    labels, kinds = {}, {}
    for key, y in arrays.items():
        y = np.asarray(y)
        if y.ndim == 0:
            raise InputError(f"Labels {key!r} in {where} are a single value, not one per sample. Expected an array "
                             "with one label (or one row of targets) per sample. Fix: save aligned labels.")
        if n is not None and len(y) != n:
            raise InputError(f"Labels {key!r} in {where} have {len(y)} entries but the inputs have {n} samples. "
                             "Expected one label per sample. Fix: pass aligned inputs and labels.")
        if y.dtype == object or np.issubdtype(y.dtype, np.complexfloating) or not (
                np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise InputError(f"Labels {key!r} in {where} have dtype {y.dtype}. Expected numbers. Fix: save them "
                             "with a numeric dtype.")
        if key == y_key:
            candidates = [i for i, name in enumerate(names) if name not in labels and spec.scored(name)]
            kinds_found = {i: _kind_for(y, shapes[i], spec.kind_of(names[i])) for i in candidates}
            # class labels go to a class output before a regression head that could read them as numbers
            fit = next((i for i in candidates if kinds_found[i] and kinds_found[i] != "regression"), None)
            fit = next((i for i in candidates if kinds_found[i]), None) if fit is None else fit
            if fit is None:
                outs = ", ".join(f"{nm} {shapes[i]}" for i, nm in enumerate(names))
                forced = [f"{nm}={spec.kind_of(nm)}" for nm in names if spec.kind_of(nm)]
                hint = f" (with --task {', '.join(forced)})" if forced else ""
                raise InputError(
                    f"Labels {key!r} in {where} (shape {tuple(y.shape)}, {y.dtype}) fit none of the model's outputs"
                    f"{hint}: {outs}. Expected class indices or one-hot rows for a class output, 0/1 for a sigmoid "
                    "output, or one row of targets per sample shaped like the output. Fix: save them as "
                    f"y_<output name>, pass --task NAME=KIND, or drop {key!r} to measure fidelity.")
            name = names[fit]
        else:
            name = key[len(y_key) + 1:]
            if name not in names:
                raise InputError(f"{where} has labels {key!r}, but the model has no output {name!r} (its outputs: "
                                 f"{', '.join(names)}). Expected {y_key}_<output name>. Fix: rename the array.")
            if not spec.scored(name):
                continue
        shape = shapes[names.index(name)]
        kind = _kind_for(y, shape, spec.kind_of(name))
        if kind is None and spec.kind_of(name) == "fidelity":
            continue  # judged by fidelity as asked: the labels are named as unused by the caller
        if kind is None:
            raise InputError(
                f"Labels {key!r} in {where} (shape {tuple(y.shape)}, {y.dtype}) do not fit output {name!r} "
                f"{shape}. Expected class indices or one-hot rows for a class output, 0/1 for a sigmoid output, or "
                f"one row of targets per sample shaped like the output. Fix: pass --task {name}=KIND to say how to "
                "read them.")
        labels[name] = KINDS[kind].read(y, shape, name, where)
        kinds[name] = kind
    return Truth(labels, kinds)


# ---- scoring -------------------------------------------------------------------------------------------

def infer_unlabelled(name: str, shape, distribution: bool, spec: TaskSpec) -> str:
    """The kind of an output without labels: forced by --task, else classes for probability rows, else
    fidelity (a sigmoid's or a regression's values alone do not say which it is)."""
    forced = spec.kind_of(name)
    if forced is not None:
        return forced
    return "classes" if distribution and len(_per_sample(shape)) == 1 and (_width(shape) or 0) >= 2 else "fidelity"


def threshold(spec: TaskSpec, probabilities: bool) -> float:
    return spec.threshold if spec.threshold is not None else (0.5 if probabilities else 0.0)


def _seed_rng():
    return np.random.default_rng(0)


def _weights(n: int, rounds: int = BOOTSTRAP):
    """Bootstrap resample counts, (rounds, n), a block of rounds at a time: the same draw for every variant."""
    rng = _seed_rng()
    for start in range(0, rounds, 100):
        k = min(100, rounds - start)
        yield np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(k)]).astype(np.float64)


def macro_f1(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """Per-label F1 averaged over labels; a label with no positive in truth or prediction counts as 1.

    With `weights` (rounds, n), one F1 per bootstrap round."""
    p, t = pred.astype(np.float64), truth.astype(np.float64)
    if weights is None:
        tp, fp, fn = (p * t).sum(0), (p * (1 - t)).sum(0), ((1 - p) * t).sum(0)
    else:
        tp, fp, fn = weights @ (p * t), weights @ (p * (1 - t)), weights @ ((1 - p) * t)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 1.0)
    return f1.mean(axis=-1) if weights is not None else float(f1.mean())


def _percentile(x) -> list[float]:
    return [float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5))]


def _two_sided(diffs: np.ndarray) -> float:
    """Bootstrap p-value of 'no change' from resampled differences (variant minus reference)."""
    if np.all(diffs == 0):
        return 1.0
    return float(min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))))


def _round(x, digits: int = 6):
    return None if x is None else round(float(x), digits)


def score(kind: str, var: dict, ref: dict, labels, spec: TaskSpec) -> dict:
    """One output of one variant against the float model's: the figures its kind reports.

    `var` and `ref` hold what the streams kept for this output: "top1", "top5" (sample arrays or None), "raw"
    ((n, d) values or None), "sqnr_db", "cosine", "max_abs_err", "probabilities" (the float model's values lie
    in [0, 1]). Returns the per-output row of results.json (see Variant.outputs).
    """
    n = next((len(ref[k]) for k in ("top1", "raw") if ref.get(k) is not None), 0)
    row = {"task": kind, "labels": labels is not None, "n": n, "sqnr_db": var["sqnr_db"], "cosine": var["cosine"],
           "max_abs_err": var["max_abs_err"]}
    return {**row, **KINDS[kind].score(var, ref, labels, spec, n)}


def _fidelity(var: dict) -> dict:
    return {"metric": "sqnr_db", "value": var["sqnr_db"]}


def _agreement(mine, theirs, n: int) -> dict:
    agree = int(np.sum(np.all((mine == theirs).reshape(n, -1), axis=1))) if n else 0
    return {"agreement": agree / n if n else None, "agreements": agree}


def _judged_by_agreement(found: dict, n: int) -> dict:
    agree = found["agreements"]
    return {**found, "metric": "agreement", "value": found["agreement"], "ci": stats.wilson(agree, n),
            "reference": 1.0, "loss": _round((n - agree) / n * 100) if n else None}


def _accuracy(mine, theirs, labels, n: int) -> dict:
    hits, ref_hits = mine == labels, theirs == labels
    h, rh = int(hits.sum()), int(ref_hits.sum())
    return {"metric": "accuracy", "value": h / n, "ci": stats.wilson(h, n), "reference": rh / n, "hits": h,
            "reference_hits": rh, "loss": _round((rh - h) / n * 100),
            "loss_ci": stats.paired_drop_ci(ref_hits, hits), "p": stats.mcnemar_exact(hits, ref_hits),
            "_hits": hits}  # per sample, for the test against float32; not written


def _decisions(var: dict, ref: dict, spec: TaskSpec, n: int):
    """Values past the threshold (variant's, float model's) and the threshold; None when not kept."""
    if var.get("raw") is None or ref.get("raw") is None:
        return None
    thr = threshold(spec, ref["probabilities"])
    return var["raw"].reshape(n, -1) > thr, ref["raw"].reshape(n, -1) > thr, thr


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _multilabel(pred: np.ndarray, ref_pred: np.ndarray, truth: np.ndarray) -> dict:
    f1, ref_f1 = macro_f1(pred, truth), macro_f1(ref_pred, truth)
    values, losses = [], []
    for w in _weights(len(truth)):
        a, b = macro_f1(pred, truth, w), macro_f1(ref_pred, truth, w)
        values.append(a)
        losses.append((b - a) * 100)
    values, losses = np.concatenate(values), np.concatenate(losses)
    return {"metric": "f1", "value": f1, "ci": _percentile(values), "reference": ref_f1,
            "loss": _round((ref_f1 - f1) * 100), "loss_ci": [_round(x) for x in _percentile(losses)],
            "p": _two_sided(-losses)}


def _regression(raw: np.ndarray, ref_raw: np.ndarray, y: np.ndarray) -> dict:
    y = np.asarray(y, np.float64).reshape(len(y), -1)  # (n,) targets would broadcast against (n, 1) outputs
    err = np.abs(raw.reshape(len(y), -1).astype(np.float64) - y).mean(axis=1)
    ref_err = np.abs(ref_raw.reshape(len(y), -1).astype(np.float64) - y).mean(axis=1)
    sq = ((raw.reshape(len(y), -1).astype(np.float64) - y) ** 2).mean(axis=1)
    mae, ref_mae = float(err.mean()), float(ref_err.mean())
    maes, increases = [], []
    for w in _weights(len(y)):
        a, b = w @ err / len(y), w @ ref_err / len(y)
        maes.append(a)
        increases.append(np.where(b > 0, (a - b) / np.where(b > 0, b, 1) * 100, np.where(a > b, np.inf, 0.0)))
    maes, increases = np.concatenate(maes), np.concatenate(increases)
    increase = (mae - ref_mae) / ref_mae * 100 if ref_mae > 0 else (0.0 if mae == ref_mae else math.inf)
    diff = err - ref_err
    p = 1.0
    if np.any(diff != 0):
        from scipy.stats import wilcoxon

        p = float(wilcoxon(diff).pvalue)
    return {"metric": "mae", "value": mae, "ci": _percentile(maes), "reference": ref_mae,
            "rmse": float(np.sqrt(sq.mean())), "error_sum": float(err.sum()), "reference_error_sum": float(ref_err.sum()),
            "loss": _round(increase) if math.isfinite(increase) else None,
            "loss_ci": [_round(x) for x in _percentile(increases)] if np.all(np.isfinite(increases)) else None,
            "p": p}


# ---- gates ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    """How one deciding metric is held to its budget."""

    metric: str
    words: str           # what the criterion reads as, e.g. "accuracy drop ≤ {budget:g} pp"
    budget_field: str    # the Budget field that bounds it

    def budget(self, budget: Budget):
        return getattr(budget, self.budget_field)

    def margin(self, o: dict, budget: Budget) -> float:
        """How far inside the budget (negative: past it), in the budget's units."""
        return self.budget(budget) - (o.get("loss") if o.get("loss") is not None else math.inf)

    def passes(self, o: dict, budget: Budget) -> bool:
        return self.margin(o, budget) >= -TOLERANCE

    def uncertain(self, o: dict, budget: Budget) -> bool:
        """The 95 % interval of the loss reaches past the budget."""
        return o.get("loss_ci") is not None and o["loss_ci"][1] > self.budget(budget)

    def criterion(self, budget: Budget) -> str:
        return self.words.format(budget=self.budget(budget))

    def reach(self, o: dict) -> str | None:
        """Where the 95 % interval reaches on the losing side, in words, or None without one."""
        if o.get("loss_ci") is None:
            return None
        return f"the 95 % interval of its drop reaches {o['loss_ci'][1]:.2f} {self.unit}"

    unit = "pp"


def _exact(value: float) -> Fraction:
    return Fraction(repr(float(value)))


class DropGate(Gate):
    """Accuracy (classes, binary): the float model's hits minus the variant's, in whole samples (exact fractions
    of the accuracies where the counts are not known), so a drop of exactly the budget is within it."""

    def passes(self, o, budget):
        if "hits" in o:
            return (o["reference_hits"] - o["hits"]) * 100 <= _exact(budget.max_drop_pp) * o["n"]
        return (_exact(o["reference"]) - _exact(o["value"])) * 100 <= _exact(budget.max_drop_pp)


class F1Gate(Gate):
    """Multi-label F1: the float model's minus the variant's, in points (a ratio: no whole-sample count)."""

    def passes(self, o, budget):
        return (o["reference"] - o["value"]) * 100 <= budget.max_drop_pp + TOLERANCE


class ErrorGate(Gate):
    """Regression: the MAE may grow by the budget's share of the float model's, compared as sums."""

    def passes(self, o, budget):
        limit = o["reference_error_sum"] * (100 + budget.max_error_increase_pct)
        return o["error_sum"] * 100 <= limit * (1 + TOLERANCE) + TOLERANCE

    def uncertain(self, o, budget):
        return o.get("loss_ci") is None or o["loss_ci"][1] > budget.max_error_increase_pct

    def reach(self, o):
        if o.get("loss_ci") is None:
            return "the interval of its MAE increase is unbounded (the float model's error is 0)"
        return f"the 95 % interval of its MAE increase reaches {o['loss_ci'][1]:.2f} %"


class AgreementGate(Gate):
    """Class outputs without labels: samples whose top-1 class (decision) differs, in whole samples."""

    def margin(self, o, budget):
        return (o["value"] * 100 - budget.min_agreement_pct) if o.get("value") is not None else -math.inf

    def passes(self, o, budget):
        if "agreements" in o:
            return (o["n"] - o["agreements"]) * 100 <= (100 - _exact(budget.min_agreement_pct)) * o["n"]
        return _exact(o["value"]) * 100 >= _exact(budget.min_agreement_pct)

    def uncertain(self, o, budget):
        return o.get("ci") is not None and o["ci"][0] * 100 < budget.min_agreement_pct

    def reach(self, o):
        return None if o.get("ci") is None else \
            f"the 95 % interval of its top-1 agreement reaches down to {o['ci'][0] * 100:.2f} %"


class SqnrGate(Gate):
    def margin(self, o, budget):
        return math.inf if o["value"] is None else o["value"] - budget.min_sqnr_db  # None: identical outputs

    def passes(self, o, budget):
        return self.margin(o, budget) >= 0


GATES: dict[str, Gate] = {g.metric: g for g in (
    DropGate("accuracy", "accuracy drop ≤ {budget:g} pp", "max_drop_pp"),
    F1Gate("f1", "F1 drop ≤ {budget:g} pp", "max_drop_pp"),
    ErrorGate("mae", "MAE increase ≤ {budget:g} %", "max_error_increase_pct"),
    AgreementGate("agreement", "top-1 agreement ≥ {budget:g} %", "min_agreement_pct"),
    SqnrGate("sqnr_db", "SQNR ≥ {budget:g} dB", "min_sqnr_db"),
    Gate("metric", "metric drop ≤ {budget:g}", "max_metric_drop"),
)}


def describe(o: dict) -> str:
    """A scored output's deciding figure in words: 'accuracy -0.44 pp', 'MAE +1.3 %', 'SQNR 31.2 dB'."""
    m = o["metric"]
    if m == "sqnr_db":
        return "SQNR ∞ dB (identical)" if o["value"] is None else f"SQNR {o['value']:.1f} dB"
    if m == "mae":
        return "MAE " + ("+∞ %" if o.get("loss") is None else f"{signed(o['loss'])} %")
    if m == "agreement":
        return f"top-1 agreement {o['value'] * 100:.2f} %"
    if m == "metric":
        return f"{o.get('name', 'metric')} {o['value']:.4g} (float {o['reference']:.4g})"
    return f"{'F1' if m == 'f1' else 'accuracy'} {signed(-o['loss'])} pp"


def signed(x: float) -> str:
    """+1.25 or -0.40, never -0.00."""
    text = f"{x:+.2f}"
    return "+0.00" if text == "-0.00" else text


def verdict(o: dict, budget: Budget) -> dict:
    """Whether one scored output of a variant meets its budget, and how sure that is."""
    gate = GATES[o["metric"]]
    uncertain = bool(gate.uncertain(o, budget))
    return {"output": o["output"], "task": o["task"], "criterion": gate.criterion(budget),
            "passed": bool(gate.passes(o, budget)), "uncertain": uncertain, "figure": describe(o),
            **({"reach": gate.reach(o)} if uncertain and gate.reach(o) else {})}


def verdicts(outputs: list, budget: Budget) -> list[dict]:
    """Every scored output's verdict (outputs left out by --output are not judged)."""
    return [verdict(o, budget) for o in outputs or [] if o.get("scored", True)]


def custom_metric(fn, name: str, names: list[str], labels: dict, outputs: dict, reference: str) -> dict:
    """The user's metric on every variant's full outputs: name -> {value, reference, ...} rows."""
    def call(outs):
        try:
            value = fn({k: labels.get(k) for k in names}, dict(zip(names, outs)))
        except Exception as exc:  # noqa: BLE001  the user's code: its failure is their input, told in one line
            raise InputError(f"--metric {name} raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}. "
                             "Expected a function (labels, outputs) -> one number, both dicts keyed by output "
                             "name. Fix: correct the function.") from None
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise InputError(f"--metric {name} returned {value!r}. Expected one finite number, higher is better. "
                             "Fix: return a float.")
        return value

    ref = call(outputs[reference])
    rows = {}
    for variant, outs in outputs.items():
        value = ref if variant == reference else call(outs)
        rows[variant] = {"output": "*", "task": "metric", "metric": "metric", "name": name, "labels": bool(labels),
                         "value": value, "reference": ref, "loss": _round(ref - value)}
    return rows


def load_metric(spec: str):
    """`module:function` or `path/file.py:function` as a callable, imported only now."""
    import importlib
    import importlib.machinery
    import importlib.util
    import sys
    from pathlib import Path

    module, sep, func = spec.rpartition(":")
    if not sep or not module or not func:
        raise InputError(f"--metric {spec!r} is not module:function. Expected e.g. mymetrics:f1 or "
                         "metrics.py:f1. Fix: name the module and the function.")
    try:
        if module.endswith(".py") or Path(module).is_file():
            if not Path(module).is_file():
                raise FileNotFoundError(module)
            # any file of Python source, whatever its suffix (spec_from_file_location alone wants .py)
            loader = importlib.machinery.SourceFileLoader(Path(module).stem, module)
            found = importlib.util.spec_from_file_location(Path(module).stem, module, loader=loader)
            mod = importlib.util.module_from_spec(found)
            found.loader.exec_module(mod)
        else:
            sys.path.insert(0, str(Path.cwd()))
            try:
                mod = importlib.import_module(module)
            finally:
                sys.path.remove(str(Path.cwd()))
    except Exception as exc:  # noqa: BLE001  the user's module: any failure to import it is their input
        raise InputError(f"--metric {spec}: cannot import {module!r} ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}). Expected an importable module or a .py file. "
                         "Fix: check the name and run from the folder that holds it.") from None
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise InputError(f"--metric {spec}: {module!r} has no function {func!r}. Expected a function (labels, "
                         "outputs) -> number. Fix: check the name.")
    return fn


# ---- what the recommendation judges of one variant ---------------------------------------------------------------

def scored_outputs(v, ref, results=None) -> list[dict]:
    """A variant's scored outputs (Variant.outputs); for rows without them (results written before outputs were
    scored, or built by hand), the same rows from the first output's accuracy, else the class outputs' top-1
    agreement, else the SQNR. `v` and `ref` are Variants or dicts with the same fields; `results` (a Results) names the degenerate
    outputs, whose agreement decides nothing."""
    get = (lambda o, k: o.get(k)) if isinstance(v, dict) else getattr
    if get(v, "outputs"):
        return list(get(v, "outputs"))
    acc, ref_acc = get(v, "accuracy"), get(ref, "accuracy")
    if acc is not None and ref_acc is not None:
        return [{"output": "output_0", "task": "classes", "metric": "accuracy", "value": acc, "reference": ref_acc,
                 "loss": round((ref_acc - acc) * 100, 6), "loss_ci": get(v, "drop_ci_pp")}]
    degenerate = {d["output"] for d in (results.degenerate_outputs if results else [])}
    agreements = [f for f in (get(v, "fidelity") or []) if f.get("agreement") is not None
                  and f["output"] not in degenerate]
    if not agreements and get(v, "agreement") is not None and not degenerate:
        agreements = [{"output": "output_0", "agreement": get(v, "agreement")}]
    if agreements:
        return [{"output": f["output"], "task": "classes", "metric": "agreement", "value": f["agreement"],
                 "reference": 1.0, "loss": round((1 - f["agreement"]) * 100, 6)} for f in agreements]
    return [{"output": "output_0", "task": "fidelity", "metric": "sqnr_db", "value": get(v, "sqnr_db")}]
