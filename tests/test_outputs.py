"""Task kinds, labels per output, per-output scores and their gates: pure numpy, hand-made cases with exact values."""
from __future__ import annotations

import numpy as np
import pytest

from quantbench.core.errors import InputError
from quantbench.measure import evaluate, outputs
from quantbench.measure.outputs import Budget, TaskSpec, read_labels, verdict


# ---- which output labels fit, and as what -------------------------------------------------------------------

@pytest.mark.parametrize("y, shape, kind", [
    (np.array([0, 3, 9]), (None, 10), "classes"),
    (np.eye(4)[[0, 2, 3]], (None, 4), "classes"),                  # one-hot rows
    (np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0]]), (None, 3), "multilabel"),
    (np.array([0, 1, 1]), (None, 1), "binary"),
    (np.array([True, False, True]), (None,), "binary"),
    (np.array([151.0, 75.0, 141.0]), (None, 1), "regression"),     # whole numbers on a one-value output
    (np.array([[0.2, 0.5], [1.5, 2.0], [0.0, 0.1]]), (None, 2), "regression"),
])
def test_labels_are_read_as_the_kind_that_fits(y, shape, kind):
    truth = read_labels({"y": y}, ["out"], [shape], TaskSpec(), "d.npz")
    assert truth.kinds == {"out": kind} and len(truth.labels["out"]) == 3


def test_class_labels_go_to_the_class_head_before_a_regression_head():
    truth = read_labels({"y": np.array([1, 2, 3])}, ["amp", "cls"], [(None, 1), (None, 10)], TaskSpec(), "d")
    assert truth.kinds == {"cls": "classes"}
    truth = read_labels({"y": np.array([0.5, 2.5, 3.0])}, ["amp", "cls"], [(None, 1), (None, 10)], TaskSpec(), "d")
    assert truth.kinds == {"amp": "regression"}


def test_y_name_labels_its_output_and_y_takes_the_next_that_fits():
    truth = read_labels({"y_b": np.array([0, 1]), "y": np.array([1, 0])}, ["a", "b"], [(None, 1), (None, 1)],
                        TaskSpec(), "d")
    assert truth.kinds == {"a": "binary", "b": "binary"}
    np.testing.assert_array_equal(truth.labels["b"], [0, 1])


def test_a_forced_kind_reads_the_labels_its_way_and_fidelity_drops_them():
    y = np.array([0, 1, 1])
    assert read_labels({"y": y}, ["o"], [(None, 1)], TaskSpec((("o", "regression"),)), "d").kinds == {"o": "regression"}
    assert read_labels({"y_o": y}, ["o"], [(None, 1)], TaskSpec((("o", "fidelity"),)), "d").kinds == {}
    assert read_labels({"y_o": y}, ["o", "p"], [(None, 1), (None, 1)], TaskSpec(only=("p",)), "d").kinds == {}


@pytest.mark.parametrize("y, shape, spec, message", [
    (np.array([0.5, 1.5]), (None, 10), TaskSpec((("o", "classes"),)),
     r"Labels for output 'o' in d are not whole class indices\. Expected integers or one-hot rows\. Fix: save "
     r"y\.astype\('int64'\), or pass --task o=regression"),
    (np.array([0.5, 1.5]), (None, 10), TaskSpec(), r"Labels 'y' in d \(shape \(2,\), float64\) fit none of the "
                                                   r"model's outputs: o \(None, 10\)\. Expected class indices"),
    (np.array([[0, 1], [1, 0]]), (None, 3), TaskSpec(), r"fit none of the model's outputs: o \(None, 3\)"),
    (np.array([0, 12]), (None, 10), TaskSpec(),
     r"Labels for output 'o' in d range from 0 to 12, but the output has 10 classes \(0\.\.9\)"),
    (np.array([0, 2]), (None, 1), TaskSpec((("o", "binary"),)),
     r"Labels for output 'o' in d are not 0/1, one per sample\. Expected a binary label per sample"),
    (np.array([[0, 1, 0]]), (None, 3), TaskSpec((("o", "binary"),)),
     r"--task o=binary, but output 'o' has shape \(None, 3\)\. Expected one value per sample, \(N,\) or \(N, 1\)\. "
     r"Fix: use --task o=multilabel"),
    (np.array([1.0, np.nan]), (None, 1), TaskSpec((("o", "regression"),)),
     r"Targets for output 'o' in d hold NaN or Inf\. Expected finite numbers"),
])
def test_labels_that_do_not_fit_say_what_was_expected(y, shape, spec, message):
    with pytest.raises(InputError, match=message):
        read_labels({"y": y}, ["o"], [shape], spec, "d")


@pytest.mark.parametrize("y, message", [
    (np.array(3), r"^Labels 'y' in d are a single value, not one per sample\. Expected an array with one label \(or "
                  r"one row of targets\) per sample\. Fix: save aligned labels\.$"),
    (np.array([1 + 2j, 0j]), r"Labels 'y' in d have dtype complex128\. Expected numbers"),
    (np.array([b"a", b"b"]), r"Labels 'y' in d have dtype \|S1\. Expected numbers"),
    (np.array([0, 1, 1]), r"Labels 'y' in d have 3 entries but the inputs have 2 samples"),
])
def test_labels_of_the_wrong_form_are_refused(y, message):
    with pytest.raises(InputError, match=message):
        read_labels({"y": y}, ["o"], [(None, 1)], TaskSpec(), "d", n=2)


def test_regression_targets_wider_than_the_raw_limit_are_refused_with_the_fix():
    with pytest.raises(InputError, match=r"quantbench scores regression outputs of at most 1024\. Fix: pass --task "
                                         r"o=fidelity"):
        read_labels({"y": np.zeros((2, 2000))}, ["o"], [(None, 2000)], TaskSpec((("o", "regression"),)), "d")


@pytest.mark.parametrize("items, message", [
    (["amp"], r"--task 'amp' is not NAME=KIND"), (["=classes"], r"--task '=classes' is not NAME=KIND"),
])
def test_parse_tasks_refuses_what_is_not_name_equals_kind(items, message):
    with pytest.raises(InputError, match=message):
        outputs.parse_tasks(items)
    assert outputs.parse_tasks([" a = classes"]) == (("a", "classes"),)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_drop_pp": -1}, r"--max-accuracy-drop is -1\. Expected percentage points from 0 to 100"),
    ({"min_agreement_pct": 101}, r"--min-agreement is 101\. Expected a percentage from 0 to 100"),
    ({"max_error_increase_pct": -0.5}, r"--max-error-increase is -0\.5\. Expected a finite number ≥ 0\. Fix: pass, "
                                       r"for example, --max-error-increase 1\."),
    ({"min_sqnr_db": float("inf")}, r"--min-sqnr is inf\. Expected a finite number of dB\. Fix: pass, for example, "
                                    r"--min-sqnr 30\."),
    ({"min_sqnr_db": float("nan")}, r"--min-sqnr is nan\. Expected a finite number of dB"),
    ({"max_metric_drop": -1.0}, r"--max-metric-drop is -1\.0\. Expected a finite number ≥ 0"),
])
def test_bad_budgets_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        Budget(**kwargs)


# ---- scores -------------------------------------------------------------------------------------------------

def test_binary_scores_at_the_threshold_with_auc():
    ref = np.array([[0.9], [0.2], [0.7], [0.4]], np.float32)
    var = np.array([[0.66], [0.6], [0.7], [0.3]], np.float32)  # sample 1 crosses 0.5
    y = np.array([1, 0, 0, 0])
    m = evaluate.measure({"ref": [ref], "v": [var]}, "ref", outputs.Truth({"p": y}, {"p": "binary"}), ["p"])
    o = m["v"]["outputs"][0]
    assert o["task"] == "binary" and o["threshold"] == 0.5
    assert (o["hits"], o["reference_hits"], o["n"]) == (2, 3, 4) and o["value"] == 0.5 and o["reference"] == 0.75
    assert o["agreement"] == 0.75 and o["loss"] == 25.0
    assert o["auc"] == pytest.approx(2 / 3)  # the positive's 0.66 beats 0.6 and 0.3, not 0.7
    m = evaluate.measure({"ref": [ref], "v": [var]}, "ref", outputs.Truth({"p": y}, {"p": "binary"}), ["p"],
                         TaskSpec(threshold=0.65))
    assert m["v"]["outputs"][0]["hits"] == 3 and m["v"]["outputs"][0]["threshold"] == 0.65


def test_logits_are_thresholded_at_zero():
    ref = np.array([[2.0], [-1.0], [0.5]], np.float32)
    m = evaluate.measure({"ref": [ref], "v": [ref - 1]}, "ref", outputs.Truth({"p": np.array([1, 0, 1])},
                                                                              {"p": "binary"}), ["p"])
    o = m["v"]["outputs"][0]
    assert o["threshold"] == 0.0 and o["hits"] == 2 and o["reference_hits"] == 3


def test_multilabel_f1_by_hand():
    truth = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    ref = np.array([[0.9, 0.1], [0.8, 0.9], [0.2, 0.7], [0.1, 0.2]], np.float32)  # perfect: F1 1
    var = np.array([[0.9, 0.6], [0.3, 0.9], [0.2, 0.7], [0.1, 0.2]], np.float32)  # label 0: tp 1 fn 1; label 1: tp 2 fp 1
    m = evaluate.measure({"ref": [ref], "v": [var]}, "ref", outputs.Truth({"t": truth}, {"t": "multilabel"}), ["t"])
    o = m["v"]["outputs"][0]
    assert o["metric"] == "f1" and o["reference"] == 1.0
    assert o["value"] == pytest.approx((2 / 3 + 4 / 5) / 2) and o["loss"] == pytest.approx((1 - o["value"]) * 100)
    assert o["ci"][0] <= o["value"] <= o["ci"][1] and o["loss_ci"][0] <= o["loss"] <= o["loss_ci"][1]
    assert outputs.macro_f1(np.zeros((2, 2), bool), np.zeros((2, 2))) == 1.0  # nothing to find, nothing found


def test_regression_mae_rmse_and_the_increase():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    ref = np.array([[1.5], [2.0], [3.0], [4.5]], np.float32)     # MAE 0.25
    var = np.array([[1.5], [2.5], [3.0], [4.5]], np.float32)     # MAE 0.375: +50 %
    m = evaluate.measure({"ref": [ref], "v": [var]}, "ref", outputs.Truth({"r": y}, {"r": "regression"}), ["r"])
    o = m["v"]["outputs"][0]
    assert o["value"] == pytest.approx(0.375) and o["reference"] == pytest.approx(0.25) and o["loss"] == 50.0
    assert o["rmse"] == pytest.approx(np.sqrt(0.75 / 4)) and o["error_sum"] == pytest.approx(1.5)
    assert o["p"] == 1.0  # Wilcoxon: one non-zero difference of four cannot reject


def test_without_labels_probabilities_are_classes_and_the_rest_fidelity():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]], np.float32)
    emb = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], np.float32)
    m = evaluate.measure({"ref": [probs, emb], "v": [probs[:, ::-1], emb * 1.01]}, "ref", None, ["p", "e"])
    p, e = m["v"]["outputs"]
    assert p["task"] == "classes" and p["metric"] == "agreement" and p["agreements"] == 0 and p["value"] == 0.0
    assert e["task"] == "fidelity" and e["metric"] == "sqnr_db" and e["value"] == pytest.approx(40.0, abs=1e-3)
    assert e["cosine"] == pytest.approx(1.0)


def test_cosines_of_zero_rows():
    got = evaluate.cosines(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 0.0],
                                                                                     [0.0, 2.0]]))
    np.testing.assert_array_equal(got, [1.0, 0.0, 0.0])


# ---- gates, at their boundaries ------------------------------------------------------------------------------

def _accuracy_row(hits, reference_hits, n, loss_ci=(0.0, 0.0)):
    return {"output": "o", "task": "classes", "metric": "accuracy", "hits": hits, "reference_hits": reference_hits,
            "n": n, "value": hits / n, "reference": reference_hits / n, "loss": (reference_hits - hits) / n * 100,
            "loss_ci": list(loss_ci)}


def test_a_drop_of_exactly_the_budget_in_samples_is_within_it():
    assert verdict(_accuracy_row(195, 196, 200), Budget(0.5))["passed"]        # 1 of 200 = 0.5 pp
    assert not verdict(_accuracy_row(194, 196, 200), Budget(0.5))["passed"]    # 2 of 200 = 1 pp
    assert verdict(_accuracy_row(999, 1000, 1000), Budget(0.1))["passed"]       # 0.1 is not exact in binary
    assert not verdict(_accuracy_row(998, 1000, 1000), Budget(0.1))["passed"]
    assert verdict(_accuracy_row(201, 196, 200), Budget(0.0))["passed"]         # a gain passes any budget


def test_uncertain_both_ways_with_where_the_interval_reaches():
    shaky = verdict(_accuracy_row(195, 196, 200, (-0.4, 1.3)), Budget(1.0))
    assert shaky["passed"] and shaky["uncertain"] and shaky["reach"] == "the 95 % interval of its drop reaches 1.30 pp"
    sure = verdict(_accuracy_row(195, 196, 200, (-0.4, 0.9)), Budget(1.0))
    assert sure["passed"] and not sure["uncertain"] and "reach" not in sure


def test_agreement_gate_in_whole_samples():
    row = {"output": "o", "task": "classes", "metric": "agreement", "n": 200, "agreements": 198, "value": 0.99,
           "ci": [0.964, 0.997]}
    found = verdict(row, Budget(min_agreement_pct=99))
    assert found["passed"] and found["uncertain"] and found["criterion"] == "top-1 agreement ≥ 99 %"
    assert not verdict({**row, "agreements": 197, "value": 0.985}, Budget(min_agreement_pct=99))["passed"]
    assert not verdict({**row, "ci": [0.991, 1.0]}, Budget(min_agreement_pct=99))["uncertain"]


def test_regression_gate_compares_sums():
    row = {"output": "r", "task": "regression", "metric": "mae", "value": 1.05, "reference": 1.0, "loss": 5.0,
           "error_sum": 105.0, "reference_error_sum": 100.0, "loss_ci": [3.0, 4.9]}
    found = verdict(row, Budget(max_error_increase_pct=5))
    assert found["passed"] and not found["uncertain"] and found["figure"] == "MAE +5.00 %"
    assert not verdict({**row, "error_sum": 105.001}, Budget(max_error_increase_pct=5))["passed"]
    assert verdict({**row, "loss_ci": [3.0, 6.0]}, Budget(max_error_increase_pct=5))["uncertain"]


def test_sqnr_gate_and_infinite_sqnr():
    row = {"output": "e", "task": "fidelity", "metric": "sqnr_db", "value": 29.99}
    assert not verdict(row, Budget())["passed"] and verdict({**row, "value": 30.0}, Budget())["passed"]
    assert verdict({**row, "value": None}, Budget())["figure"] == "SQNR ∞ dB (identical)"
    assert verdict({**row, "value": None}, Budget())["passed"]


def test_f1_gate():
    row = {"output": "t", "task": "multilabel", "metric": "f1", "value": 0.9, "reference": 0.91, "loss": 1.0,
           "loss_ci": [0.2, 1.8]}
    found = verdict(row, Budget(1.0))
    assert found["passed"] and found["uncertain"] and found["figure"] == "F1 -1.00 pp"
    assert not verdict({**row, "value": 0.8999}, Budget(1.0))["passed"]


# ---- your own metric ------------------------------------------------------------------------------------------

def test_custom_metric_rows_and_its_failures():
    outs = {"ref": [np.ones((3, 1))], "v": [np.zeros((3, 1))]}
    rows = outputs.custom_metric(lambda labels, o: float(o["p"].mean()), "mean", ["p"], {}, outs, "ref")
    assert rows["v"]["value"] == 0.0 and rows["v"]["reference"] == 1.0 and rows["v"]["loss"] == 1.0
    assert verdict(rows["v"], Budget(max_metric_drop=1.0))["passed"]
    assert not verdict(rows["v"], Budget(max_metric_drop=0.99))["passed"]
    with pytest.raises(InputError, match=r"--metric bad raised ZeroDivisionError: division by zero\. Expected a "
                                         r"function \(labels, outputs\) -> one number"):
        outputs.custom_metric(lambda labels, o: 1 / 0, "bad", ["p"], {}, outs, "ref")
    with pytest.raises(InputError, match=r"--metric nan returned nan\. Expected one finite number"):
        outputs.custom_metric(lambda labels, o: float("nan"), "nan", ["p"], {}, outs, "ref")


def test_load_metric_from_a_file_and_its_errors(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("def score(labels, outputs):\n    return 1.0\n")
    assert outputs.load_metric(f"{tmp_path / 'mine.py'}:score")({}, {}) == 1.0
    (tmp_path / "metric.txt").write_text("def score(labels, outputs):\n    return 2.0\n")  # Python, another suffix
    assert outputs.load_metric(f"{tmp_path / 'metric.txt'}:score")({}, {}) == 2.0
    with pytest.raises(InputError, match=r"--max-accuracy-drop is True\. Expected percentage points"):
        Budget(max_drop_pp=True)
    monkeypatch.chdir(tmp_path)
    assert outputs.load_metric("mine:score")({}, {}) == 1.0
    with pytest.raises(InputError, match=r"--metric 'mine' is not module:function"):
        outputs.load_metric("mine")
    with pytest.raises(InputError, match=r"--metric mine:nope: 'mine' has no function 'nope'"):
        outputs.load_metric("mine:nope")
    with pytest.raises(InputError, match=r"--metric absent_module_x:f: cannot import 'absent_module_x' "
                                         r"\(ModuleNotFoundError"):
        outputs.load_metric("absent_module_x:f")


def test_probability_rows_keep_no_raw_values_and_other_outputs_do():
    probs = np.full((4, 10), 0.1, np.float32)
    sig = np.full((4, 3), 0.7, np.float32)
    s = evaluate.Stream().update([probs, sig], [probs, sig])
    assert s.raw[0] is None and s.raw[1] is not None and s.top5[0] is not None and s.top5[1] is None
    assert evaluate.Stream(keep_all=True).update([probs], [probs]).raw[0] is not None
    wide = np.zeros((2, outputs.RAW_LIMIT + 1), np.float32)
    assert evaluate.Stream().update([wide], [wide]).raw[0] is None


def test_shards_that_decided_differently_on_raw_values_merge_without_them():
    sums_to_one = np.array([[0.5, 0.5]], np.float32)    # a sigmoid pair that happens to sum to 1 in this shard
    other = np.array([[0.9, 0.8]], np.float32)
    first, later = evaluate.Stream().update([sums_to_one], [sums_to_one]), evaluate.Stream().update([other], [other])
    assert first.raw[0] is None and later.raw[0] is not None
    assert later.merge(first).raw[0] is None and evaluate.Stream().update([other], [other]).merge(
        evaluate.Stream().update([sums_to_one], [sums_to_one])).raw[0] is None
