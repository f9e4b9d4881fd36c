import numpy as np
import pytest

from quantbench.core import stats
from quantbench.measure import evaluate
from quantbench.study.config import StudyConfig


def onehot(classes, n=4, p=0.97):
    out = np.full((len(classes), n), (1 - p) / (n - 1))
    out[np.arange(len(classes)), classes] = p
    return out


@pytest.fixture
def outputs():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    keras = onehot(labels)
    wrong = labels.copy()
    wrong[:3] = (wrong[:3] + 1) % 4   # three samples misclassified
    return labels, {"keras": keras, "float32": keras.copy(), "int8-only": onehot(wrong),
                    "float16": keras + 1e-3 * np.array([1, -1, 0, 0])}


def test_measure_fills_every_variant_field(outputs):
    labels, outs = outputs
    m = evaluate.measure(outs, "keras", labels)
    assert set(m) == set(outs)
    for row in m.values():
        assert set(row) == {"accuracy", "accuracy_ci", "accuracy_delta_pp", "p_vs_float32", "agreement",
                            "sqnr_db", "kl", "top5", "fidelity", "drop_ci_pp", "outputs"}
    int8 = m["int8-only"]
    assert int8["accuracy"] == 0.7 and int8["agreement"] == 0.7
    assert int8["accuracy_ci"] == stats.wilson(7, 10)
    assert int8["accuracy_delta_pp"] == pytest.approx(-30.0)
    assert int8["p_vs_float32"] == pytest.approx(0.25)  # 3 discordant pairs, all one way: 2 * 0.5**3
    assert m["float32"]["p_vs_float32"] == 1.0 and m["float32"]["accuracy_delta_pp"] == 0.0


def test_fidelity_against_the_reference(outputs):
    labels, outs = outputs
    m = evaluate.measure(outs, "keras", labels)
    assert m["keras"]["sqnr_db"] is None and m["keras"]["kl"] is None        # the reference itself
    assert m["float32"]["sqnr_db"] is None and m["float32"]["kl"] == pytest.approx(0, abs=1e-12)  # identical
    expected = stats.sqnr_db(outs["keras"], outs["float16"])
    assert m["float16"]["sqnr_db"] == pytest.approx(expected, abs=1e-3) and 40 < expected < 80
    assert m["int8-only"]["kl"] > m["float16"]["kl"] > 0


def test_without_labels_only_fidelity(outputs):
    _, outs = outputs
    m = evaluate.measure(outs, "keras", None)
    assert all(m[n]["accuracy"] is None and m[n]["p_vs_float32"] is None for n in m)
    assert m["int8-only"]["agreement"] == 0.7


def test_kl_only_for_probabilities(outputs):
    labels, outs = outputs
    logits = {k: np.log(v) for k, v in outs.items()}  # negative values: not a distribution
    m = evaluate.measure(logits, "keras", labels)
    assert all(row["kl"] is None for row in m.values())
    assert m["int8-only"]["sqnr_db"] is not None


def test_without_float32_there_is_no_test(outputs):
    labels, outs = outputs
    del outs["float32"]
    m = evaluate.measure(outs, "keras", labels)
    assert m["int8-only"]["accuracy"] == 0.7 and m["int8-only"]["p_vs_float32"] is None


def test_degenerate_reference_outputs_are_named():
    from quantbench.measure.evaluate import degenerate

    rng = np.random.default_rng(0)
    uniform = np.full((50, 10), 0.1, np.float32)
    constant_top1 = np.tile(np.eye(10, dtype=np.float32)[3], (50, 1)) * 0.5 + rng.uniform(0, 0.01, (50, 10))
    constant_top1 /= constant_top1.sum(axis=1, keepdims=True)
    fine = rng.dirichlet(np.ones(10), 50).astype(np.float32)
    found = degenerate([uniform, constant_top1, fine], ["u", "c", "f"])
    assert [d["output"] for d in found] == ["u", "c"]
    assert "is the same for all 50 evaluation samples (no variance)" in found[0]["why"]
    assert "top-1 class on 'c' is 3 for all 50 evaluation samples" in found[1]["why"]
    assert degenerate([fine], ["f"]) == []


def test_reference_with_nan_or_inf_is_refused():
    from quantbench.core.errors import InputError

    ok = np.full((4, 3), 1 / 3)
    evaluate.check_reference([ok, np.zeros(4)], ["p", "v"], "d.npz")
    bad = ok.copy()
    bad[1, 0], bad[3, 2] = np.nan, np.inf
    with pytest.raises(InputError, match=r"The float model's output 'p' is NaN or Inf for 2 of 4 samples of d\.npz, "
                                         r"so no figure can be measured against it\. Expected finite outputs\. Fix: "):
        evaluate.check_reference([bad], ["p"], "d.npz")


def test_study_of_a_model_with_a_nan_weight_is_refused_and_leaves_nothing(tiny_model, digits, tmp_path):
    # A bit flip in an .h5 file's weights (fuzz case h5-148) gave NaN outputs and then a JSON error.
    import keras

    from quantbench.core.errors import InputError
    from quantbench.inputs import data
    from quantbench.study import pipeline as study

    broken = keras.models.clone_model(tiny_model)
    weights = tiny_model.get_weights()
    weights[-2] = weights[-2].copy()
    weights[-2][0, 0] = np.nan
    broken.set_weights(weights)
    with pytest.raises(InputError, match=rf"output '{broken.output_names[0]}' is NaN or Inf for 20 of 20 samples of "
                                         "array"):
        study.run_study(broken, data.Dataset([digits.x_test[:20]], None, "array"), digits.x_train[:8], tmp_path / "s",
                        StudyConfig(techniques=["float32"]))
    assert list(tmp_path.iterdir()) == []


def test_variant_with_nan_where_the_float_model_is_finite_is_named():
    ref, ok = [np.full((3, 2), 0.5)], [np.full((3, 2), 0.4)]
    assert evaluate.non_finite_error(ok, ["p"]) is None
    bad = [np.array([[0.5, 0.5], [np.nan, 0.5], [0.5, 0.5]])]
    assert evaluate.non_finite_error(bad, ["p"]) == \
        "its output 'p' is NaN or Inf for 1 of 3 samples, where the float model's is finite"


def test_study_row_of_a_variant_giving_nan_is_failed_not_a_json_error(tiny_model, digits, tmp_path):
    # fuzz case npy-336: one input value of 2.8e38 (a flipped exponent bit) is finite through the Keras
    # model, but NaN through the dynamic-range variant; results.json then could not be written.
    from quantbench.inputs import data
    from quantbench.study import pipeline as study

    x = digits.x_test[:20].copy()
    x[0, 3, 3, 0] = 2.8e38
    results = study.run_study(tiny_model, data.Dataset([x], digits.y_test[:20], "array"), digits.x_train[:8],
                              tmp_path / "s", StudyConfig(techniques=["dynamic"]))
    row = results.variant("dynamic")
    assert row.status == "failed" and row.error == (
        f"dynamic: its output '{tiny_model.output_names[0]}' is NaN or Inf for 1 of 20 samples, where the float "
        "model's is finite")
    assert (tmp_path / "s" / "results.json").is_file()
