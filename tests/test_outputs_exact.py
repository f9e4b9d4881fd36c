"""outputs.py to the letter: exact values, exact messages (what, where, expected, fix) and the boundaries of every
check. Pure numpy; expected bootstrap figures are recomputed here from the seeded draws, resample by resample."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from scipy.stats import wilcoxon

from quantbench.core import stats
from quantbench.core.errors import InputError
from quantbench.measure import outputs
from quantbench.measure.outputs import GATES, KINDS, Budget, TaskSpec, Truth, read_labels, verdict

KIND_LIST = "classes, binary, multilabel, regression, fidelity"


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def _draws(n, rounds=outputs.BOOTSTRAP):
    """The bootstrap's resampled indices, drawn as the seeded generator draws them."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, n, n) for _ in range(rounds)]


# ---- budgets and the command line -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"max_drop_pp": -1}, "--max-accuracy-drop is -1. Expected percentage points from 0 to 100. Fix: pass, for "
                          "example, --max-accuracy-drop 1."),
    ({"max_drop_pp": 100.5}, "--max-accuracy-drop is 100.5. Expected percentage points from 0 to 100. Fix: pass, "
                             "for example, --max-accuracy-drop 1."),
    ({"max_error_increase_pct": -0.5}, "--max-error-increase is -0.5. Expected a finite number ≥ 0. Fix: pass, for "
                                       "example, --max-error-increase 1."),
    ({"min_sqnr_db": float("nan")}, "--min-sqnr is nan. Expected a finite number of dB. Fix: pass, for example, "
                                    "--min-sqnr 30."),
    ({"min_agreement_pct": 101}, "--min-agreement is 101. Expected a percentage from 0 to 100. Fix: pass, for "
                                 "example, --min-agreement 99."),
    ({"min_agreement_pct": "99"}, "--min-agreement is '99'. Expected a percentage from 0 to 100. Fix: pass, for "
                                  "example, --min-agreement 99."),
    ({"max_metric_drop": -1.0}, "--max-metric-drop is -1.0. Expected a finite number ≥ 0. Fix: pass, for example, "
                                "--max-metric-drop 1."),
])
def test_budget_messages_in_full(kwargs, message):
    assert _message(Budget, **kwargs) == message


def test_budgets_at_their_bounds_are_accepted():
    for kwargs in ({"max_drop_pp": 0}, {"max_drop_pp": 100}, {"max_error_increase_pct": 0},
                   {"min_agreement_pct": 0}, {"min_agreement_pct": 100}, {"max_metric_drop": 0.0},
                   {"min_sqnr_db": -5.0}, {"max_error_increase_pct": 1e6}):
        Budget(**kwargs)
    assert Budget().max_metric_drop is None


def test_task_spec_check_messages_in_full():
    # a kind and a threshold are refused when the spec is made, before any model is loaded
    assert _message(TaskSpec, (("a", "nope"),)) == (f"--task a=nope: unknown kind 'nope'. Expected one of: "
                                                    f"{KIND_LIST}. Fix: pass --task a=classes, for example.")
    assert _message(TaskSpec((("x", "binary"),)).check, ["a", "b"]) == (
        "No output named 'x' in the model (its outputs: a, b). Expected one of those names in --task and --output. "
        "Fix: use the model's own output names (`quantbench inspect` lists them for a .tflite).")
    assert _message(TaskSpec(only=("c",)).check, ["a", "b"]).startswith("No output named 'c' in the model (its "
                                                                       "outputs: a, b).")
    assert _message(TaskSpec, threshold=math.inf) == ("--threshold is inf. Expected a finite number. Fix: pass "
                                                      "--threshold 0.5.")
    spec = TaskSpec((("a", "binary"),), threshold=0.3, only=("a",))
    assert spec.check(["a", "b"]) is spec
    assert spec.kind_of("a") == "binary" and spec.kind_of("b") is None
    assert spec.scored("a") and not spec.scored("b") and TaskSpec().scored("b")


def test_parse_tasks_exact():
    assert outputs.parse_tasks(["a=b=c", " x = regression "]) == (("a", "b=c"), ("x", "regression"))
    assert outputs.parse_tasks(None) == ()
    assert _message(outputs.parse_tasks, ["amp="]) == (
        f"--task 'amp=' is not NAME=KIND. Expected an output name and a kind, e.g. --task amp=regression (kinds: "
        f"{KIND_LIST}). Fix: write it as NAME=KIND.")


# ---- shapes and label values -------------------------------------------------------------------------------------

def test_per_sample_and_width():
    assert outputs._per_sample(()) == () and outputs._per_sample((None,)) == ()
    assert outputs._per_sample((None, 3, 4)) == (3, 4)
    assert outputs._width((None,)) == 1 and outputs._width((None, 2, 3)) == 6 and outputs._width((None, 0)) == 0
    assert outputs._width((None, None)) is None and outputs._width((None, -1)) is None
    assert outputs._width((None, 4, None)) is None


def test_zero_one_and_whole():
    assert outputs._zero_one(np.array([True, False])) and outputs._zero_one(np.array([0.0, 1.0]))
    assert not outputs._zero_one(np.array([0, 2])) and not outputs._zero_one(np.array([0, 1], dtype=object))
    assert outputs._whole(np.array([1, 2])) and outputs._whole(np.array([1.0, -2.0]))
    assert outputs._whole(np.array([1.0, 2.0], np.float32))
    assert not outputs._whole(np.array([1.5])) and not outputs._whole(np.array([1.0, np.inf]))
    assert not outputs._whole(np.array([True, False])) and not outputs._whole(np.array([1 + 0j]))


@pytest.mark.parametrize("y, shape, fits", [
    (np.array([0, 1]), (None, 0), False),          # no classes
    (np.array([0, 0]), (None, 1), False),          # one class
    (np.array([0, 1]), (None, 2), True),           # two classes: the least a class output has
    (np.array([[3], [4]]), (None, 10), True),      # a column of indices
    (np.zeros((3, 1, 2), int), (None, 10), False),
    (np.eye(3)[[0, 1]], (None, -1), True),         # one-hot rows, classes unknown
    (np.eye(3)[[0, 1]], (None, None), True),
    (np.eye(3)[[0, 1]], (None, 4), False),
    (np.array([[1, 1, 0]]), (None, 3), False),     # not one-hot
    (np.array([0, 1]), (None, 2, 2), False),
])
def test_classes_fits(y, shape, fits):
    assert KINDS["classes"].fits(y, shape) is fits


def test_classes_read_exact():
    read = KINDS["classes"].read
    got = read(np.array([[3], [4]]), (None, 10), "o", "d")
    assert got.dtype == np.int64 and got.shape == (2,) and got.tolist() == [3, 4]
    got = read(np.array([[0, 1], [1, 0]]), (None, 2), "o", "d")
    assert got.dtype == np.int64 and got.tolist() == [1, 0]
    assert read(np.eye(4)[[1, 2]], (None, -1), "o", "d").tolist() == [1, 2]
    assert read(np.eye(4)[[1, 3]], (None, None), "o", "d").tolist() == [1, 3]
    got = read(np.array([0.0, 1.0]), (None, 2), "o", "d")
    assert got.dtype == np.int64 and got.tolist() == [0, 1]
    assert read(np.array([0, 9]), (None, 10), "o", "d").tolist() == [0, 9]
    assert _message(read, np.eye(2)[[0, 1]], (None, 3), "o", "d") == (
        "One-hot labels for output 'o' in d have 2 columns but the output has 3 classes. Expected shape (N, 3). "
        "Fix: encode labels for the model's classes.")
    assert _message(read, np.array([0.5]), (None, 3), "o", "d") == (
        "Labels for output 'o' in d are not whole class indices. Expected integers or one-hot rows. Fix: save "
        "y.astype('int64'), or pass --task o=regression for float targets.")
    for shape in ((None,), (None, 1), (None, -1), (None, 2, 2)):
        assert _message(read, np.array([0, 0]), shape, "o", "d") == (
            f"Labels for output 'o' in d are class indices, but the output {shape} is not a class output. "
            "Expected (N, classes). Fix: pass --task o=regression or binary, or drop the labels to measure fidelity.")
    assert _message(read, np.array([0, 10]), (None, 10), "o", "d") == (
        "Labels for output 'o' in d range from 0 to 10, but the output has 10 classes (0..9). Fix: check the labels "
        "match the model's classes.")
    assert _message(read, np.array([-1, 3]), (None, 10), "o", "d").startswith(
        "Labels for output 'o' in d range from -1 to 3,")


def test_binary_read_and_fits_exact():
    kind = KINDS["binary"]
    assert kind.fits(np.array([[0], [1]]), (None, 1)) and not kind.fits(np.array([[0, 1]]), (None, 1))
    got = kind.read(np.array([[1], [0]]), (None, 1), "o", "d")
    assert got.dtype == np.int64 and got.shape == (2,) and got.tolist() == [1, 0]
    assert kind.read(np.array([True, False]), (None,), "o", "d").dtype == np.int64
    assert _message(kind.read, np.array([0, 1]), (None, 3), "o", "d") == (
        "--task o=binary, but output 'o' has shape (None, 3). Expected one value per sample, (N,) or (N, 1). Fix: "
        "use --task o=multilabel for several sigmoids.")
    assert _message(kind.read, np.array([[0, 1]]), (None, 1), "o", "d") == (
        "Labels for output 'o' in d are not 0/1, one per sample. Expected a binary label per sample. Fix: save "
        "(y > 0).astype('int64'), or pass --task o=regression for float targets.")


def test_multilabel_read_and_fits_exact():
    kind = KINDS["multilabel"]
    assert kind.fits(np.array([[1, 0], [0, 1]]), (None, 2)) and kind.fits(np.array([[1, 0, 1]]), (None, 3))
    assert not kind.fits(np.array([[1], [0]]), (None, 1)) and not kind.fits(np.array([[1, 0]]), (None, None))
    got = kind.read(np.array([[1, 0], [0, 1]]), (None, 2), "o", "d")
    assert got.dtype == np.uint8 and got.tolist() == [[1, 0], [0, 1]]
    assert kind.read(np.array([[[1, 0]], [[0, 1]]]), (None, 1, 2), "o", "d").shape == (2, 2)
    assert kind.read(np.array([[1, 0, 1]]), (None, 3), "o", "d").tolist() == [[1, 0, 1]]
    for y, shape, w in ((np.array([[1, 0], [0, 1]]), (None, 3), 3), (np.array([[1, 2], [0, 1]]), (None, 2), 2),
                        (np.array([[1], [0]]), (None, 1), 1), (np.array([1, 0]), (None, 2), 2),
                        (np.array([[1, 0]]), (None, None), None)):
        assert _message(kind.read, y, shape, "o", "d") == (
            f"Labels for output 'o' in d have shape {y.shape}; a multi-label output {shape} needs 0/1 rows of {w} "
            "values. Fix: save one 0/1 row per sample.")


def test_regression_read_and_fits_exact():
    kind = KINDS["regression"]
    assert kind.fits(np.array([1, 2]), (None, 1)) and kind.fits(np.array([[1.0, 2.0]]), (None, 2))
    assert kind.fits(np.zeros((2, 1024)), (None, 1024)) and not kind.fits(np.zeros((2, 1025)), (None, 1025))
    assert not kind.fits(np.array([True, False]), (None, 1)) and not kind.fits(np.zeros((2, 2)), (None, None))
    got = kind.read(np.array([[1.0, 2.0]]), (None, 2), "o", "d")
    assert got.dtype == np.float64 and got.tolist() == [[1.0, 2.0]]
    assert kind.read(np.array([1, 2]), (None,), "o", "d").tolist() == [[1.0], [2.0]]
    assert kind.read(np.zeros((2, 1024)), (None, 1024), "o", "d").shape == (2, 1024)
    for y, shape, w in ((np.zeros((2, 3)), (None, 2), 2), (np.array([True, False]), (None, 1), 1),
                        (np.zeros((2, 2)), (None, None), None)):
        assert _message(kind.read, y, shape, "o", "d") == (
            f"Targets for output 'o' in d have shape {y.shape}, but the output is {shape}. Expected one row of {w} "
            "numbers per sample. Fix: reshape the targets to the output's shape.")
    assert _message(kind.read, np.zeros((2, 1025)), (None, 1025), "o", "d") == (
        "Targets for output 'o' in d have 1025 values per sample; quantbench scores regression outputs of at most "
        "1024. Fix: pass --task o=fidelity.")
    assert _message(kind.read, np.array([1.0, np.inf]), (None, 1), "o", "d") == (
        "Targets for output 'o' in d hold NaN or Inf. Expected finite numbers. Fix: clean or drop those samples.")


def test_registry():
    assert list(KINDS) == ["classes", "binary", "multilabel", "regression", "fidelity"]
    assert KINDS["fidelity"].fits(np.array([0.0]), (None, 1)) is False and KINDS["fidelity"].labelled is False
    with pytest.raises(ValueError) as info:
        outputs.register(KINDS["classes"])
    assert str(info.value) == "A kind named 'classes' is registered already."

    class Extra(outputs.Kind):
        name = "extra_for_test"

    kind = Extra()
    try:
        assert outputs.register(kind) is kind and KINDS["extra_for_test"] is kind
    finally:
        KINDS.pop("extra_for_test", None)


def test_truth_rows():
    truth = Truth({"a": np.array([5, 6, 7]), "b": np.array([[1.0], [2.0], [3.0]])}, {"a": "classes", "b": "regression"})
    part = truth.rows([0, 2])
    assert part.labels["a"].tolist() == [5, 7] and part.labels["b"].tolist() == [[1.0], [3.0]]
    assert part.kinds == {"a": "classes", "b": "regression"} and part.kinds is not truth.kinds
    assert truth and not Truth()


# ---- reading labels from a data file ---------------------------------------------------------------------------

def test_read_labels_count_and_dtype_messages():
    assert _message(read_labels, {"y": np.array([0, 1, 1])}, ["o"], [(None, 2)], TaskSpec(), "d", n=2) == (
        "Labels 'y' in d have 3 entries but the inputs have 2 samples. Expected one label per sample. Fix: pass "
        "aligned inputs and labels.")
    assert read_labels({"y": np.array([0, 1])}, ["o"], [(None, 2)], TaskSpec(), "d", n=2).kinds == {"o": "classes"}
    assert _message(read_labels, {"y": np.array(["a", "b"])}, ["o"], [(None, 2)], TaskSpec(), "d") == (
        "Labels 'y' in d have dtype <U1. Expected numbers. Fix: save them with a numeric dtype.")
    assert _message(read_labels, {"y": np.array([0, 1], dtype=object)}, ["o"], [(None, 2)], TaskSpec(), "d") == (
        "Labels 'y' in d have dtype object. Expected numbers. Fix: save them with a numeric dtype.")
    assert read_labels({"y": np.array([True, False])}, ["o"], [(None, 1)], TaskSpec(), "d").kinds == {"o": "binary"}


def test_read_labels_y_skips_labelled_and_unscored_outputs():
    arrays = {"y_a": np.array([0, 1]), "y": np.array([1, 0])}
    truth = read_labels(arrays, ["a", "b"], [(None, 1), (None, 1)], TaskSpec(), "d")
    assert truth.kinds == {"a": "binary", "b": "binary"} and truth.labels["b"].tolist() == [1, 0]
    truth = read_labels({"y": np.array([1, 0])}, ["a", "b"], [(None, 1), (None, 1)], TaskSpec(only=("b",)), "d")
    assert truth.kinds == {"b": "binary"}
    truth = read_labels({"y_a": np.array([1, 0])}, ["a", "b"], [(None, 1), (None, 1)], TaskSpec(only=("a",)), "d")
    assert truth.kinds == {"a": "binary"}
    # labels for an output left out by --output are skipped, and the next array is still read
    truth = read_labels({"y_b": np.array([1, 0]), "y_a": np.array([0, 1])}, ["a", "b"], [(None, 1), (None, 1)],
                        TaskSpec(only=("a",)), "d")
    assert truth.kinds == {"a": "binary"} and truth.labels["a"].tolist() == [0, 1]
    # labels of an output judged by fidelity as asked are dropped, and the next array is still read
    truth = read_labels({"y_a": np.array([1, 0]), "y_b": np.array([0, 1])}, ["a", "b"], [(None, 1), (None, 1)],
                        TaskSpec((("a", "fidelity"),)), "d")
    assert truth.kinds == {"b": "binary"} and set(truth.labels) == {"b"}


def test_read_labels_messages_in_full():
    spec = TaskSpec((("a", "fidelity"), ("c", "fidelity")))
    shapes = [(None, 1), (None, 10), (None, 1)]
    assert _message(read_labels, {"y": np.array([0.5, 1.5])}, ["a", "b", "c"], shapes, spec, "d") == (
        "Labels 'y' in d (shape (2,), float64) fit none of the model's outputs (with --task a=fidelity, "
        "c=fidelity): a (None, 1), b (None, 10), c (None, 1). Expected class indices or one-hot rows for a class "
        "output, 0/1 for a sigmoid output, or one row of targets per sample shaped like the output. Fix: save them "
        "as y_<output name>, pass --task NAME=KIND, or drop 'y' to measure fidelity.")
    assert _message(read_labels, {"y": np.array([0.5, 1.5])}, ["b"], [(None, 10)], TaskSpec(), "d").startswith(
        "Labels 'y' in d (shape (2,), float64) fit none of the model's outputs: b (None, 10). Expected")
    assert _message(read_labels, {"y_zzz": np.array([1])}, ["a", "b"], [(None, 1), (None, 1)], TaskSpec(), "d") == (
        "d has labels 'y_zzz', but the model has no output 'zzz' (its outputs: a, b). Expected y_<output name>. "
        "Fix: rename the array.")
    assert _message(read_labels, {"y_b": np.array([0.5, 1.5])}, ["b"], [(None, 10)], TaskSpec(), "d") == (
        "Labels 'y_b' in d (shape (2,), float64) do not fit output 'b' (None, 10). Expected class indices or one-hot "
        "rows for a class output, 0/1 for a sigmoid output, or one row of targets per sample shaped like the "
        "output. Fix: pass --task b=KIND to say how to read them.")
    truth = read_labels({"t_b": np.array([0, 1])}, ["b"], [(None, 2)], TaskSpec(), "d", y_key="t")
    assert truth.kinds == {"b": "classes"}


def test_infer_unlabelled():
    spec = TaskSpec((("o", "regression"),))
    assert outputs.infer_unlabelled("o", (None, 10), True, spec) == "regression"
    assert outputs.infer_unlabelled("p", (None, 10), True, spec) == "classes"
    assert outputs.infer_unlabelled("p", (None, 2), True, spec) == "classes"
    assert outputs.infer_unlabelled("p", (None, 1), True, spec) == "fidelity"
    assert outputs.infer_unlabelled("p", (None, 10), False, spec) == "fidelity"
    assert outputs.infer_unlabelled("p", (None, 2, 5), True, spec) == "fidelity"
    assert outputs.threshold(TaskSpec(), True) == 0.5 and outputs.threshold(TaskSpec(), False) == 0.0
    assert outputs.threshold(TaskSpec(threshold=0.2), True) == 0.2


# ---- the bootstrap and its small helpers --------------------------------------------------------------------------

def test_seeded_weights_are_the_draws():
    assert outputs._seed_rng().integers(0, 1000, 5).tolist() == np.random.default_rng(0).integers(0, 1000, 5).tolist()
    blocks = list(outputs._weights(5))
    assert [len(b) for b in blocks] == [100] * 10 and blocks[0].dtype == np.float64
    expected = np.stack([np.bincount(d, minlength=5) for d in _draws(5)])
    np.testing.assert_array_equal(np.concatenate(blocks), expected)
    assert [len(b) for b in outputs._weights(4, rounds=150)] == [100, 50]
    assert [len(b) for b in outputs._weights(4, rounds=30)] == [30]


def test_percentile_two_sided_and_round():
    assert outputs._percentile(np.arange(101)) == [2.5, 97.5]
    assert outputs._percentile(np.arange(201)) == [5.0, 195.0]
    assert outputs._two_sided(np.zeros(3)) == 1.0
    assert outputs._two_sided(np.array([1.0, 2.0, 3.0])) == 0.0
    assert outputs._two_sided(np.ones(4)) == 0.0
    assert outputs._two_sided(np.array([0.0, 0.0, 1.0])) == 1.0
    assert outputs._two_sided(np.array([-1.0, 1.0, 2.0, 3.0])) == 0.5
    assert outputs._two_sided(np.array([0.0, 1.0, 2.0, 3.0])) == 0.5
    assert outputs._two_sided(np.array([-3.0, -2.0, -1.0, 0.0])) == 0.5
    assert outputs._two_sided(np.array([-3.0, -2.0, -1.0, 0.5])) == 0.5
    assert outputs._two_sided(np.array([-3.0, -2.0, -1.0, 0.5, 0.5, 0.5, 0.5, 0.5])) == 0.75
    assert outputs._round(None) is None and outputs._round(1.23456789) == 1.234568
    assert outputs._round(2.5, 0) == 2.0 and outputs._round(np.float32(0.5)) == 0.5


def _f1(pred, truth):
    """Per-label F1 averaged, written out: a label nobody predicts or has counts as 1."""
    scores = []
    for j in range(truth.shape[1]):
        tp = int(np.sum((pred[:, j] == 1) & (truth[:, j] == 1)))
        fp = int(np.sum((pred[:, j] == 1) & (truth[:, j] == 0)))
        fn = int(np.sum((pred[:, j] == 0) & (truth[:, j] == 1)))
        scores.append(1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def test_macro_f1_exact():
    assert outputs.macro_f1(np.array([[1], [0]]), np.array([[0], [0]])) == 0.0      # one false positive
    assert outputs.macro_f1(np.array([[0], [0]]), np.array([[1], [0]])) == 0.0      # one miss
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    pred = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]], bool)
    got = outputs.macro_f1(pred, truth)
    assert type(got) is float and got == pytest.approx((2 / 4 + 4 / 5 + 1) / 3, abs=1e-15)  # label 0: tp 1 fp 1 fn 1
    weights = np.array([[1, 1, 1, 1], [2, 0, 1, 1], [0, 0, 0, 4], [0, 3, 1, 0]], np.float64)
    got = outputs.macro_f1(pred, truth, weights)
    assert got.shape == (4,)
    for w, value in zip(weights, got):
        idx = np.repeat(np.arange(4), w.astype(int))
        assert value == pytest.approx(_f1(pred[idx].astype(int), truth[idx]), abs=1e-15)


# ---- scores ------------------------------------------------------------------------------------------------------

def _var(**kw):
    return {"sqnr_db": 12.5, "cosine": 0.99, "max_abs_err": 0.1, **kw}


def test_score_rows_without_kept_values_fall_back_to_fidelity():
    spec = TaskSpec()
    assert outputs.score("fidelity", _var(), {}, None, spec) == {
        "task": "fidelity", "labels": False, "n": 0, "sqnr_db": 12.5, "cosine": 0.99, "max_abs_err": 0.1,
        "metric": "sqnr_db", "value": 12.5}
    fallback = {"metric": "sqnr_db", "value": 12.5}
    assert KINDS["classes"].score(_var(top1=None), {}, None, spec, 0) == fallback
    assert KINDS["binary"].score(_var(raw=None), {"raw": np.zeros((2, 1))}, None, spec, 2) == fallback
    assert KINDS["binary"].score(_var(raw=np.zeros((2, 1))), {"raw": None}, None, spec, 2) == fallback
    assert KINDS["regression"].score(_var(raw=None), {}, np.zeros((2, 1)), spec, 2) == fallback
    assert KINDS["regression"].score(_var(raw=np.zeros((2, 1))), {"raw": np.zeros((2, 1))}, None, spec, 2) == fallback
    assert outputs.Kind().score(_var(), {}, None, spec, 0) == fallback


def test_agreement_and_judged_by_agreement_exact():
    assert outputs._agreement(np.array([], int), np.array([], int), 0) == {"agreement": None, "agreements": 0}
    assert outputs._agreement(np.array([[1, 0], [1, 1], [0, 0]]), np.array([[1, 0], [1, 0], [0, 0]]), 3) == {
        "agreement": 2 / 3, "agreements": 2}
    assert outputs._judged_by_agreement({"agreement": 0.75, "agreements": 3}, 4) == {
        "agreement": 0.75, "agreements": 3, "metric": "agreement", "value": 0.75, "ci": stats.wilson(3, 4),
        "reference": 1.0, "loss": 25.0}
    assert outputs._judged_by_agreement({"agreement": 2 / 3, "agreements": 2}, 3)["loss"] == 33.333333
    assert outputs._judged_by_agreement({"agreement": None, "agreements": 0}, 0) == {
        "agreement": None, "agreements": 0, "metric": "agreement", "value": None, "ci": stats.wilson(0, 0),
        "reference": 1.0, "loss": None}


def test_classes_score_rows_exact():
    ref = {"top1": np.array([0, 1, 2, 3]), "top5": None}
    var = _var(top1=np.array([0, 1, 2, 0]), top5=None, raw=None)
    row = outputs.score("classes", var, ref, None, TaskSpec())
    assert row == {"task": "classes", "labels": False, "n": 4, "sqnr_db": 12.5, "cosine": 0.99, "max_abs_err": 0.1,
                   "agreement": 0.75, "agreements": 3, "metric": "agreement", "value": 0.75,
                   "ci": stats.wilson(3, 4), "reference": 1.0, "loss": 25.0}
    labels = np.array([0, 1, 1, 3])
    var["top5"] = np.array([[0, 1], [1, 0], [2, 3], [0, 2]])
    row = outputs.score("classes", var, ref, labels, TaskSpec())
    hits, ref_hits = np.array([True, True, False, False]), np.array([True, True, False, True])
    assert row["_hits"].tolist() == hits.tolist()
    del row["_hits"]
    assert row == {"task": "classes", "labels": True, "n": 4, "sqnr_db": 12.5, "cosine": 0.99, "max_abs_err": 0.1,
                   "agreement": 0.75, "agreements": 3, "metric": "accuracy", "value": 0.5, "ci": stats.wilson(2, 4),
                   "reference": 0.75, "hits": 2, "reference_hits": 3, "loss": 25.0,
                   "loss_ci": stats.paired_drop_ci(ref_hits, hits), "p": stats.mcnemar_exact(hits, ref_hits),
                   "top5": 0.5}


def test_binary_rows_exact():
    ref = {"raw": np.array([[0.9], [0.2], [0.5], [0.4]]), "probabilities": True}
    var = _var(raw=np.array([[0.66], [0.6], [0.5], [0.3]]))    # 0.5 is not past the threshold 0.5
    row = KINDS["binary"].score(var, ref, None, TaskSpec(), 4)
    assert row == {"threshold": 0.5, "agreement": 0.75, "agreements": 3, "metric": "agreement", "value": 0.75,
                   "ci": stats.wilson(3, 4), "reference": 1.0, "loss": 25.0}
    mine, theirs, thr = outputs._decisions(var, ref, TaskSpec(), 4)
    assert mine.tolist() == [[True], [True], [False], [False]] and theirs.tolist() == [[True], [False], [False],
                                                                                      [False]] and thr == 0.5
    labels = np.array([1, 0, 1, 0])
    row = KINDS["binary"].score(var, ref, labels, TaskSpec(), 4)
    hits, ref_hits = np.array([True, False, False, True]), np.array([True, True, False, True])
    assert row.pop("_hits").tolist() == hits.tolist()
    assert row == {"threshold": 0.5, "agreement": 0.75, "agreements": 3, "metric": "accuracy", "value": 0.5,
                   "ci": stats.wilson(2, 4), "reference": 0.75, "hits": 2, "reference_hits": 3, "loss": 25.0,
                   "loss_ci": stats.paired_drop_ci(ref_hits, hits), "p": stats.mcnemar_exact(hits, ref_hits),
                   "auc": 0.75}
    logits = {"raw": np.array([[0.0], [1.0]]), "probabilities": False}
    mine, theirs, thr = outputs._decisions({"raw": np.array([[0.0], [-1.0]])}, logits, TaskSpec(), 2)
    assert thr == 0.0 and mine.tolist() == [[False], [False]] and theirs.tolist() == [[False], [True]]
    assert outputs._auc(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_multilabel_rows_exact():
    truth = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0], [0, 1]])
    ref = np.array([[1, 0], [1, 1], [0, 0], [0, 0], [1, 1], [0, 1]], bool)     # not perfect
    var = np.array([[1, 1], [0, 1], [0, 1], [1, 0], [1, 0], [0, 0]], bool)
    got = outputs._multilabel(var, ref, truth)
    f1, ref_f1 = _f1(var.astype(int), truth), _f1(ref.astype(int), truth)
    values, losses = [], []
    for idx in _draws(len(truth)):
        a, b = _f1(var[idx].astype(int), truth[idx]), _f1(ref[idx].astype(int), truth[idx])
        values.append(a)
        losses.append((b - a) * 100)
    values, losses = np.array(values), np.array(losses)
    assert set(got) == {"metric", "value", "ci", "reference", "loss", "loss_ci", "p"}
    assert got["metric"] == "f1" and got["value"] == pytest.approx(f1, abs=1e-12)
    assert got["reference"] == pytest.approx(ref_f1, abs=1e-12)
    assert got["loss"] == round((ref_f1 - f1) * 100, 6)
    assert got["ci"] == pytest.approx([np.percentile(values, 2.5), np.percentile(values, 97.5)], abs=1e-12)
    assert got["loss_ci"] == pytest.approx([round(np.percentile(losses, 2.5), 6), round(np.percentile(losses, 97.5),
                                                                                          6)], abs=1e-6)
    assert got["p"] == pytest.approx(min(1.0, 2 * min(np.mean(losses >= 0), np.mean(losses <= 0))))


def _regression_expected(raw, ref_raw, y):
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    err = np.abs(raw.reshape(len(y), -1) - y).mean(axis=1)
    ref_err = np.abs(ref_raw.reshape(len(y), -1) - y).mean(axis=1)
    maes, increases = [], []
    for idx in _draws(len(y)):
        a, b = err[idx].mean(), ref_err[idx].mean()
        maes.append(a)
        increases.append((a - b) / b * 100 if b > 0 else (math.inf if a > b else 0.0))
    return err, ref_err, np.array(maes), np.array(increases)


def test_regression_rows_exact():
    y = np.array([[1.0, 2.0], [2.0, 0.0], [3.0, 1.0], [4.0, 4.0], [0.5, 0.5], [1.5, 1.0]])
    ref = y + np.array([[0.1, -0.2], [0.0, 0.3], [-0.1, 0.1], [0.2, 0.2], [0.05, 0.0], [0.1, -0.1]])
    var = y + np.array([[0.3, -0.2], [0.1, 0.4], [-0.3, 0.1], [0.2, 0.5], [0.0, 0.1], [0.4, -0.1]])
    got = outputs._regression(var.astype(np.float32), ref.astype(np.float32), y)
    err, ref_err, maes, increases = _regression_expected(var.astype(np.float32).astype(np.float64),
                                                         ref.astype(np.float32).astype(np.float64), y)
    mae, ref_mae = err.mean(), ref_err.mean()
    sq = (var.astype(np.float32).astype(np.float64) - y) ** 2
    assert set(got) == {"metric", "value", "ci", "reference", "rmse", "error_sum", "reference_error_sum", "loss",
                        "loss_ci", "p"}
    assert got["metric"] == "mae"
    assert got["value"] == pytest.approx(mae, abs=1e-12) and got["reference"] == pytest.approx(ref_mae, abs=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(sq.mean()), abs=1e-12)
    assert got["error_sum"] == pytest.approx(err.sum(), abs=1e-12)
    assert got["reference_error_sum"] == pytest.approx(ref_err.sum(), abs=1e-12)
    assert got["loss"] == pytest.approx(round((mae - ref_mae) / ref_mae * 100, 6), abs=1e-6)
    assert got["ci"] == pytest.approx([np.percentile(maes, 2.5), np.percentile(maes, 97.5)], abs=1e-12)
    assert got["loss_ci"] == pytest.approx([np.percentile(increases, 2.5), np.percentile(increases, 97.5)],
                                           abs=2e-6)
    assert got["p"] == pytest.approx(float(wilcoxon(err - ref_err).pvalue), abs=1e-15) and got["p"] < 1.0


def test_regression_flat_targets_and_a_constant_shift():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    ref = (y + 0.5).reshape(-1, 1)
    var = (y + 1.5).reshape(-1, 1)                     # every error grows by exactly 1
    got = outputs._regression(var, ref, y)
    assert got["value"] == 1.5 and got["reference"] == 0.5 and got["loss"] == 200.0 and got["rmse"] == 1.5
    assert got["ci"] == [1.5, 1.5] and got["loss_ci"] == [200.0, 200.0]
    assert got["p"] == float(wilcoxon(np.ones(6)).pvalue) and got["p"] < 0.05
    same = outputs._regression(ref, ref, y)
    assert same["p"] == 1.0 and same["loss"] == 0.0 and same["loss_ci"] == [0.0, 0.0]


def test_regression_when_the_float_model_is_exact():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    exact = y.reshape(-1, 1)
    same = outputs._regression(exact, exact, y)
    assert (same["value"], same["reference"], same["loss"], same["loss_ci"], same["p"]) == (0.0, 0.0, 0.0, [0.0, 0.0],
                                                                                            1.0)
    worse = outputs._regression(exact + 0.5, exact, y)
    assert worse["loss"] is None and worse["loss_ci"] is None and worse["value"] == 0.5
    # exact on two samples: resamples of only those have no float error; the variant errs there too -> unbounded
    ref = exact + np.array([[0.0], [0.0], [0.25], [0.5]])
    var = exact + np.array([[0.25], [0.0], [0.25], [0.5]])
    got = outputs._regression(var, ref, y)
    assert got["loss"] == pytest.approx(round(0.25 / 0.75 * 100, 6)) and got["loss_ci"] is None
    # ...and where the variant is exact wherever the float model is, the resamples of those count as no change
    var = exact + np.array([[0.0], [0.0], [0.5], [1.0]])
    got = outputs._regression(var, ref, y)
    _, _, _, increases = _regression_expected(var, ref, y)
    assert np.any(increases == 0.0) and np.all(np.isfinite(increases))
    assert got["loss"] == 100.0
    assert got["loss_ci"] == pytest.approx([np.percentile(increases, 2.5), np.percentile(increases, 97.5)], abs=2e-6)


# ---- gates -------------------------------------------------------------------------------------------------------

def test_generic_gate_margin_and_boundaries():
    gate = GATES["metric"]
    assert gate.margin({"loss": None}, Budget(max_metric_drop=1.0)) == -math.inf
    assert gate.margin({"loss": 0.25}, Budget(max_metric_drop=1.0)) == 0.75
    assert gate.passes({"loss": 1e-9}, Budget(max_metric_drop=0.0))          # within the tolerance, exactly
    assert not gate.passes({"loss": 1.1e-9}, Budget(max_metric_drop=0.0))
    assert not gate.uncertain({"loss_ci": [0.0, 1.0]}, Budget(max_metric_drop=1.0))
    assert gate.uncertain({"loss_ci": [0.0, 1.01]}, Budget(max_metric_drop=1.0))
    assert not gate.uncertain({}, Budget(max_metric_drop=1.0))
    assert gate.reach({}) is None and gate.reach({"loss_ci": [0, 0.5]}) == "the 95 % interval of its drop reaches 0.50 pp"
    assert gate.criterion(Budget(max_metric_drop=0.5)) == "metric drop ≤ 0.5"


def test_drop_gate_counts_and_fractions():
    gate = GATES["accuracy"]
    row = {"hits": 99, "reference_hits": 100, "n": 100, "value": 0.5, "reference": 1.0}   # counts decide
    assert gate.passes(row, Budget(1.0)) and not gate.passes({**row, "hits": 98}, Budget(1.0))
    assert gate.passes({"value": 0.89, "reference": 0.9}, Budget(1.0))                   # exactly 1 pp
    assert not gate.passes({"value": 0.8899, "reference": 0.9}, Budget(1.0))


def test_f1_gate_at_its_exact_boundary():
    gate = GATES["f1"]
    assert gate.passes({"reference": 0.0, "value": -0.010000000010000001}, Budget(1.0))   # == 1 pp + tolerance
    assert not gate.passes({"reference": 0.0, "value": -0.0100000001}, Budget(1.0))


def test_error_gate_at_its_exact_boundary():
    gate = GATES["mae"]
    row = {"reference_error_sum": 100.0, "error_sum": 105.00000010501002}               # == the limit, exactly
    assert gate.passes(row, Budget(max_error_increase_pct=5))
    assert not gate.passes({**row, "error_sum": 105.00000010501003}, Budget(max_error_increase_pct=5))
    assert gate.passes({"reference_error_sum": 0.0, "error_sum": 0.0}, Budget(max_error_increase_pct=5))
    assert not gate.uncertain({"loss_ci": [1.0, 5.0]}, Budget(max_error_increase_pct=5))
    assert gate.uncertain({"loss_ci": [1.0, 5.01]}, Budget(max_error_increase_pct=5))
    assert gate.uncertain({"loss_ci": None}, Budget(max_error_increase_pct=5))
    assert gate.reach({"loss_ci": None}) == ("the interval of its MAE increase is unbounded (the float model's error "
                                             "is 0)")
    assert gate.reach({"loss_ci": [1.0, 6.456]}) == "the 95 % interval of its MAE increase reaches 6.46 %"


def test_agreement_gate_exact():
    gate = GATES["agreement"]
    budget = Budget(min_agreement_pct=40)
    assert gate.margin({"value": 0.5}, budget) == 10.0
    assert gate.margin({"value": None}, budget) == -math.inf and gate.margin({}, budget) == -math.inf
    counted = {"n": 100, "agreements": 99, "value": 0.1}                          # counts decide
    assert gate.passes(counted, Budget(min_agreement_pct=99))
    assert not gate.passes({**counted, "agreements": 98, "value": 1.0}, Budget(min_agreement_pct=99))
    assert gate.passes({"value": 0.99}, Budget(min_agreement_pct=99))            # exactly 99 %
    assert not gate.passes({"value": 0.985}, Budget(min_agreement_pct=99))
    assert not gate.passes({"value": 0.9899}, Budget(min_agreement_pct=99))
    assert gate.uncertain({"ci": [0.985, 1.0]}, Budget(min_agreement_pct=99))
    assert not gate.uncertain({"ci": [0.99, 1.0]}, Budget(min_agreement_pct=99))
    assert not gate.uncertain({}, Budget(min_agreement_pct=99))
    assert gate.reach({"ci": [0.96432, 0.99]}) == "the 95 % interval of its top-1 agreement reaches down to 96.43 %"
    assert gate.reach({"ci": None}) is None and gate.reach({}) is None


def test_sqnr_gate_margin():
    gate = GATES["sqnr_db"]
    assert gate.margin({"value": 35.5}, Budget()) == 5.5 and gate.margin({"value": None}, Budget()) == math.inf
    assert gate.criterion(Budget(min_sqnr_db=20)) == "SQNR ≥ 20 dB"


# ---- words -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("row, words", [
    ({"metric": "sqnr_db", "value": 31.26}, "SQNR 31.3 dB"),
    ({"metric": "sqnr_db", "value": None}, "SQNR ∞ dB (identical)"),
    ({"metric": "mae", "loss": None}, "MAE +∞ %"),
    ({"metric": "mae", "loss": 1.3}, "MAE +1.30 %"),
    ({"metric": "mae", "loss": -0.001}, "MAE +0.00 %"),
    ({"metric": "agreement", "value": 0.9875}, "top-1 agreement 98.75 %"),
    ({"metric": "metric", "name": "mean", "value": 0.123456, "reference": 0.25}, "mean 0.1235 (float 0.25)"),
    ({"metric": "metric", "value": 0.5, "reference": 1.0}, "metric 0.5 (float 1)"),
    ({"metric": "accuracy", "loss": 0.44}, "accuracy -0.44 pp"),
    ({"metric": "accuracy", "loss": 0.001}, "accuracy +0.00 pp"),
    ({"metric": "f1", "loss": -1.5}, "F1 +1.50 pp"),
])
def test_describe(row, words):
    assert outputs.describe(row) == words


def test_verdicts_skip_outputs_left_out():
    rows = [{"output": "a", "task": "fidelity", "metric": "sqnr_db", "value": 40.0},
            {"output": "b", "task": "fidelity", "metric": "sqnr_db", "value": 10.0, "scored": False},
            {"output": "c", "task": "fidelity", "metric": "sqnr_db", "value": 10.0, "scored": True}]
    assert outputs.verdicts(rows, Budget()) == [
        {"output": "a", "task": "fidelity", "criterion": "SQNR ≥ 30 dB", "passed": True, "uncertain": False,
         "figure": "SQNR 40.0 dB"},
        {"output": "c", "task": "fidelity", "criterion": "SQNR ≥ 30 dB", "passed": False, "uncertain": False,
         "figure": "SQNR 10.0 dB"}]
    assert outputs.verdicts(None, Budget()) == []
    row = {"output": "r", "task": "regression", "metric": "mae", "loss": None, "loss_ci": None, "error_sum": 1.0,
           "reference_error_sum": 0.0}
    assert verdict(row, Budget()) == {
        "output": "r", "task": "regression", "criterion": "MAE increase ≤ 5 %", "passed": False, "uncertain": True,
        "figure": "MAE +∞ %", "reach": "the interval of its MAE increase is unbounded (the float model's error is 0)"}


# ---- your own metric ------------------------------------------------------------------------------------------

def test_custom_metric_rows_exact():
    seen = []

    def fn(labels, outs):
        seen.append((labels, sorted(outs)))
        return float(outs["p"].mean())

    outs = {"ref": [np.ones((2, 1)), np.zeros(2)], "v": [np.full((2, 1), 0.25), np.zeros(2)]}
    labels = {"p": np.array([1, 0])}
    rows = outputs.custom_metric(fn, "mean", ["p", "q"], labels, outs, "ref")
    assert len(seen) == 2 and seen[0][1] == ["p", "q"] and set(seen[0][0]) == {"p", "q"}
    assert seen[0][0]["p"] is labels["p"] and seen[0][0]["q"] is None
    assert rows == {
        "ref": {"output": "*", "task": "metric", "metric": "metric", "name": "mean", "labels": True, "value": 1.0,
                "reference": 1.0, "loss": 0.0},
        "v": {"output": "*", "task": "metric", "metric": "metric", "name": "mean", "labels": True, "value": 0.25,
              "reference": 1.0, "loss": 0.75}}
    rows = outputs.custom_metric(lambda labels, o: 2, "two", ["p"], {}, {"ref": [0]}, "ref")
    assert rows["ref"]["labels"] is False and rows["ref"]["value"] == 2.0


def test_custom_metric_failures_in_full():
    outs = {"ref": [np.ones(2)], "v": [np.zeros(2)]}

    def long_failure(labels, o):
        raise ValueError("bad   news\n" + "x" * 300)

    assert _message(outputs.custom_metric, long_failure, "m", ["p"], {}, outs, "ref") == (
        f"--metric m raised ValueError: {('bad news ' + 'x' * 300)[:200]}. Expected a function (labels, outputs) -> "
        "one number, both dicts keyed by output name. Fix: correct the function.")
    assert _message(outputs.custom_metric, lambda labels, o: "abc", "m", ["p"], {}, outs, "ref") == (
        "--metric m returned nan. Expected one finite number, higher is better. Fix: return a float.")
    assert _message(outputs.custom_metric, lambda labels, o: None, "m", ["p"], {}, outs, "ref") == (
        "--metric m returned nan. Expected one finite number, higher is better. Fix: return a float.")
    assert _message(outputs.custom_metric, lambda labels, o: math.inf, "m", ["p"], {}, outs, "ref") == (
        "--metric m returned inf. Expected one finite number, higher is better. Fix: return a float.")


def test_load_metric_exact(tmp_path, monkeypatch):
    folder = tmp_path / "with:colon"
    folder.mkdir()
    (folder / "mine.py").write_text("def score(labels, outputs):\n    return 3.0\n")
    assert outputs.load_metric(f"{folder / 'mine.py'}:score")({}, {}) == 3.0
    for spec in ("mine", ":f", "mine:"):
        assert _message(outputs.load_metric, spec) == (
            f"--metric {spec!r} is not module:function. Expected e.g. mymetrics:f1 or metrics.py:f1. Fix: name the "
            "module and the function.")
    monkeypatch.chdir(tmp_path)
    assert _message(outputs.load_metric, "missing.py:f") == (
        "--metric missing.py:f: cannot import 'missing.py' (FileNotFoundError: missing.py). Expected an importable "
        "module or a .py file. Fix: check the name and run from the folder that holds it.")
    (tmp_path / "broken.py").write_text("raise RuntimeError('bad   news\\n' + 'x' * 300)\n")
    assert _message(outputs.load_metric, "broken.py:f") == (
        f"--metric broken.py:f: cannot import 'broken.py' (RuntimeError: {('bad news ' + 'x' * 300)[:200]}). "
        "Expected an importable module or a .py file. Fix: check the name and run from the folder that holds it.")
    (tmp_path / "nofn.py").write_text("score = 1\n")
    assert _message(outputs.load_metric, "nofn.py:score") == (
        "--metric nofn.py:score: 'nofn.py' has no function 'score'. Expected a function (labels, outputs) -> number. "
        "Fix: check the name.")
    # the current folder comes first on the import path: its module wins over one of the same name further on
    other = tmp_path / "other"
    other.mkdir()
    (other / "qb_shadow_metric.py").write_text("def score(labels, outputs):\n    return -1.0\n")
    (tmp_path / "qb_shadow_metric.py").write_text("def score(labels, outputs):\n    return 5.0\n")
    monkeypatch.setattr(sys, "path", [str(other)] + sys.path)
    monkeypatch.delitem(sys.modules, "qb_shadow_metric", raising=False)
    try:
        assert outputs.load_metric("qb_shadow_metric:score")({}, {}) == 5.0
        assert str(tmp_path) not in sys.path
    finally:
        sys.modules.pop("qb_shadow_metric", None)
