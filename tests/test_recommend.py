"""The recommendation: decision tree as data, the choice and its reasons, from synthetic results."""
import pytest

from quantbench.core.errors import InputError
from quantbench.measure.outputs import Budget
from quantbench.record.results import Results, Variant
from quantbench.study import recommend
from quantbench.study.config import StudyConfig


def row(name, acc, kb, ms, io="float32"):
    return Variant(name, "converter", "ok", path=f"{name}.tflite", bytes=int(kb * 1024),
                   input_dtype=io, output_dtype=io, accuracy=acc, agreement=1.0, latency_ms={"median": ms})


@pytest.fixture
def results():
    return Results("0", {}, {}, {}, {}, [
        row("keras", 0.980, 400, 0.70),
        row("float32", 0.980, 130, 0.040),
        row("dynamic", 0.978, 41, 0.030),
        row("int8-only", 0.960, 40, 0.020, io="int8"),
        row("float16", 0.980, 70, 0.035),
        row("weight-only-int4", 0.975, 24, 0.050),
        Variant("int16x8", "converter", "failed", error="int16x8: refused"),
    ])


def test_smallest_within_budget_and_runners_up(results):
    rec = recommend.choose(results, max_drop_pp=0.4, target="cpu", optimize="size")
    assert rec.technique == "dynamic"
    assert [r["technique"] for r in rec.runners_up] == ["float16", "float32"]
    why = {e["technique"]: e["why"] for e in rec.excluded}
    assert why["weight-only-int4"] == "accuracy -0.50 pp is past the budget (accuracy drop ≤ 0.4 pp)"
    assert "past the budget" in why["int8-only"]
    assert why["int16x8"] == "failed: int16x8: refused"
    assert "Ship dynamic" in rec.summary and "Runners-up: float16" in rec.summary
    assert rec.criteria == [{"output": "output_0", "task": "classes", "criterion": "accuracy drop ≤ 0.4 pp"}]


def test_a_drop_of_exactly_the_budget_is_within_it(results):
    """0.980 - 0.975 is 0.5000000000000004 in floating point: the budget compares exact fractions."""
    rec = recommend.choose(results, max_drop_pp=0.5, target="cpu", optimize="size")
    assert rec.technique == "weight-only-int4"
    assert "weight-only-int4" not in {e["technique"] for e in rec.excluded}


def test_fastest_when_optimizing_latency(results):
    assert recommend.choose(results, 2.5, "cpu", "latency").technique == "int8-only"


def test_gpu_prefers_float_variants(results):
    rec = recommend.choose(results, 1.0, "gpu", "size")
    assert rec.technique == "weight-only-int4"
    assert any(e["technique"] == "dynamic" and "cannot serve --target gpu" in e["why"] for e in rec.excluded)


def test_int_only_never_recommends_float_ops(results):
    assert recommend.choose(results, 5.0, "int-only", "size", float_ops={"int8-only": 0}).technique == "int8-only"
    rec = recommend.choose(results, 5.0, "int-only", "size", float_ops={"int8-only": 2})
    assert rec.technique is None
    why = {e["technique"]: e["why"] for e in rec.excluded}
    assert why["int8-only"] == "has 2 float compute op(s), which --target int-only cannot run"
    assert "No variant meets the budget (accuracy drop ≤ 5 pp)" in rec.summary and "Quantization-aware training" in rec.summary


def test_uncertain_when_the_interval_crosses_the_budget(results):
    v = results.variants
    shaky = Results("0", {}, {}, {}, {}, [v[0], v[1], Variant(**{**v[2].__dict__, "drop_ci_pp": [-0.3, 0.7]})])
    rec = recommend.choose(shaky, 0.5, "cpu", "size")
    assert rec.technique == "dynamic" and rec.uncertain and "Uncertain" in rec.summary


def test_plan_skips_what_cannot_serve_the_target():
    kept, skipped = recommend.plan(["float32", "dynamic", "int8-only", "float16"], "int-only")
    assert kept == ["int8-only"] and "cannot serve --target int-only" in skipped["dynamic"]


@pytest.mark.parametrize("args, message", [
    (("tpu", "size", 1.0), "Unknown --target 'tpu'. Expected one of: cpu, gpu, int-only"),
    (("cpu", "speed", 1.0), "Unknown --optimize 'speed'"),
    (("cpu", "size", -1.0), "--max-accuracy-drop is -1.0"),
])
def test_bad_options(args, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.").replace("(", r"\(")):
        recommend.check_options(*args)


def test_the_tree_is_data():
    rows = recommend.tree_rows()
    assert [r["target"] for r in rows] == ["mcu", "int-only", "gpu", "cpu"]


# ---- The recommendation inside a real study -----------------------------------------------------

def study(model, digits, calib, tmp_path, goal, techniques):
    from quantbench.inputs.data import Dataset
    from quantbench.study.pipeline import run_study

    return run_study(model, Dataset([digits.x_test], digits.y_test, "test"), calib, tmp_path / "s",
                     StudyConfig(techniques=techniques, goal=goal))


def test_int_only_recommends_only_integer_variants(tiny_model, digits, calib, tmp_path):
    from quantbench.inputs.inspection import inspect

    res = study(tiny_model, digits, calib, tmp_path, recommend.Goal(5.0, "int-only", "size"),
                ["float32", "dynamic", "int8-only", "uint8-only", "float16", "lq-int8"])
    skipped = {v.technique: v.error for v in res.variants if v.status == "skipped"}
    assert set(skipped) == {"float32", "dynamic", "float16"} and "cannot serve --target int-only" in skipped["dynamic"]
    chosen = res.recommendation["technique"]
    assert chosen in ("int8-only", "uint8-only", "lq-int8")
    shipped = inspect(tmp_path / "s" / "recommended.tflite")
    assert shipped.float_compute_ops == 0 and shipped.inputs[0].dtype in ("int8", "uint8")
    assert (tmp_path / "s" / "recommended.tflite").read_bytes() == (tmp_path / "s" / f"{chosen}.tflite").read_bytes()


def test_selective_int8_rescues_a_tight_budget(spiky_model, digits, calib, tmp_path):
    res = study(spiky_model, digits, calib, tmp_path, recommend.Goal(2.0, "cpu", "size"),
                ["float32", "int8-fallback", "int8-only"])
    for name in ("int8-fallback", "int8-only"):
        assert res.variant(name).accuracy_delta_pp < -2  # plain int8 misses the budget
    sel = res.studies["selective"]
    assert sel["met"] and len(sel["float_layers"]) == 1 and "spiky" in sel["float_layers"][0]
    row = res.variant("int8-selective")
    assert row.ok and row.accuracy >= res.variant("keras").accuracy - 0.02
    assert row.bytes > res.variant("int8-only").bytes  # what keeping the layer float cost
    ref = res.variant("keras").accuracy
    within = [v for v in res.variants[1:] if v.ok and (ref - v.accuracy) * 100 <= 2.0]
    assert res.recommendation["technique"] == min(within, key=lambda v: v.bytes).technique
    assert "spiky" in (tmp_path / "s" / "report.md").read_text()


def test_int_only_that_misses_says_so_and_suggests_qat(spiky_model, digits, calib, tmp_path):
    res = study(spiky_model, digits, calib, tmp_path, recommend.Goal(2.0, "int-only", "size"), ["int8-only"])
    assert res.recommendation["technique"] is None and "selective" not in res.studies
    assert "No variant meets the budget (accuracy drop ≤ 2 pp) for --target int-only" in res.recommendation["summary"]
    assert "Quantization-aware training" in res.recommendation["summary"]
    assert not (tmp_path / "s" / "recommended.tflite").exists()


def test_without_labels_the_class_output_that_is_not_first_is_used():
    def row(name, kb, agree_cls):
        return Variant(name, "converter", "ok", path=f"{name}.tflite", bytes=kb * 1024, latency_ms={"median": 1.0},
                       fidelity=[{"output": "box", "agreement": None}, {"output": "cls", "agreement": agree_cls}])
    res = Results("0", {}, {}, {}, {}, [row("keras", 400, 1.0), row("float32", 130, 1.0), row("int8-only", 40, 0.97),
                                        row("dynamic", 41, 0.995)])
    rec = recommend.choose(res, 1.0, "cpu", "size")
    assert rec.metric == "agreement" and rec.technique == "dynamic"
    assert rec.excluded[0]["why"] == "top-1 agreement 97.00 % is past the budget (top-1 agreement ≥ 99 %)"


def test_outputs_without_labels_that_are_not_classes_are_held_to_the_sqnr_floor():
    rows = [Variant(n, "converter", "ok", path=f"{n}.tflite", bytes=kb, latency_ms={"median": 1.0}, sqnr_db=sqnr,
                    fidelity=[{"output": "y", "agreement": None}])
            for n, kb, sqnr in (("keras", 9, None), ("float32", 5, 80.0), ("dynamic-int4", 1, 11.5),
                                ("int8-only", 2, 29.99), ("dynamic", 3, 30.0))]
    rec = recommend.choose(Results("0", {}, {}, {}, {}, rows), 1.0, "cpu", "size")
    assert rec.metric == "sqnr_db" and rec.technique == "dynamic"  # 30.0 dB is the floor itself: within it
    why = {e["technique"]: e["why"] for e in rec.excluded}
    assert why == {"dynamic-int4": "SQNR 11.5 dB is past the budget (SQNR ≥ 30 dB)",
                   "int8-only": "SQNR 30.0 dB is past the budget (SQNR ≥ 30 dB)"}
    assert "within the budget (SQNR ≥ 30 dB)" in rec.summary
    rec = recommend.choose(Results("0", {}, {}, {}, {}, rows), 1.0, "cpu", "size", budget=Budget(min_sqnr_db=10))
    assert rec.technique == "dynamic-int4"
    metrics = {v.technique: {"accuracy": None, "agreement": None, "sqnr_db": v.sqnr_db, "fidelity": v.fidelity}
               for v in rows}
    assert recommend.needs_rescue(metrics, "keras", recommend.Goal())  # int8-only misses the floor
    assert not recommend.needs_rescue(metrics, "keras", recommend.Goal(min_sqnr_db=25))


def test_the_worst_class_output_decides_when_the_first_is_a_class_output_too():
    def row(name, agree_first, agree_second):
        return Variant(name, "converter", "ok", path=f"{name}.tflite", bytes=10, latency_ms={"median": 1.0},
                       agreement=agree_first, fidelity=[{"output": "a", "agreement": agree_first},
                                                        {"output": "b", "agreement": agree_second}])
    res = Results("0", {}, {}, {}, {}, [row("keras", 1.0, 1.0), row("float32", 1.0, 1.0), row("int8-only", 1.0, 0.9)])
    rec = recommend.choose(res, 1.0, "cpu", "size")
    assert rec.technique == "float32"
    assert rec.excluded[0]["why"] == "b: top-1 agreement 90.00 % is past the budget (top-1 agreement ≥ 99 %)"
    metrics = {v.technique: {"accuracy": None, "agreement": v.agreement, "fidelity": v.fidelity} for v in res.variants}
    assert recommend.needs_rescue(metrics, "keras", recommend.Goal())  # the rescue sees the same drop


def test_a_degenerate_float_model_does_not_let_agreement_decide():
    rows = [Variant(n, "converter", "ok", path=f"{n}.tflite", bytes=kb, latency_ms={"median": 1.0}, agreement=a,
                    sqnr_db=sqnr, fidelity=[{"output": "output_0", "agreement": a}])
            for n, kb, a, sqnr in (("keras", 9, 1.0, None), ("float32", 5, 1.0, 90.0), ("dynamic", 3, 0.98, 40.0),
                                   ("int8-only", 2, 1.0, 12.0))]
    why = "the float model's top-1 class on 'output_0' is 3 for all 100 evaluation samples"
    res = Results("0", {}, {}, {}, {}, rows, degenerate_outputs=[{"output": "output_0", "why": why}])
    rec = recommend.choose(res, 1.0, "cpu", "size")
    assert rec.metric == "sqnr_db" and "top-1 agreement cannot measure a drop there: SQNR decided" in rec.summary
    assert why in rec.summary
    assert rec.technique == "dynamic"  # int8-only agrees 100 % on a constant top-1, and its SQNR is 12 dB
    assert {e["technique"]: e["why"] for e in rec.excluded} == {
        "int8-only": "SQNR 12.0 dB is past the budget (SQNR ≥ 30 dB)"}


def test_selective_search_judges_the_class_output_the_recommendation_judges(tmp_path, digits, calib):
    """Output 0 is a regression head that int8 barely moves; output 1 is the class output it ruins."""
    import keras
    import numpy as np

    from quantbench.inputs import models
    from quantbench.study.pipeline import run_study

    models.seed_everything(4)
    inputs = keras.Input((8, 8, 1), name="image")
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 16)(inputs))
    reg = keras.layers.Dense(1, name="reg")(flat)
    hidden = keras.layers.Dense(32, activation="relu", name="spiky")(flat)
    cls = keras.layers.Dense(10, activation="softmax", name="cls")(hidden)
    model = keras.Model(inputs, [reg, cls])
    model.compile("adam", ["mse", "sparse_categorical_crossentropy"])
    model.fit(digits.x_train, [np.zeros(len(digits.x_train)), digits.y_train], epochs=6, verbose=0)
    kernel, bias = model.get_layer("spiky").get_weights()
    kernel[0, :] = 1000.0 * np.abs(kernel).max()  # pixel 0 is always 0: float unchanged, int8 ruined
    model.get_layer("spiky").set_weights([kernel, bias])
    res = run_study(model, digits.x_test[:200], calib, tmp_path / "s",
                    StudyConfig(techniques="float32,int8-fallback", goal=recommend.Goal(max_drop_pp=2.0)))
    sel = res.studies["selective"]
    assert sel["met"] and "spiky" in " ".join(sel["float_layers"])
    assert res.recommendation["technique"] == "float32"  # int8-selective kept a layer float: bigger than float32
    assert res.variant("int8-selective").bytes > res.variant("float32").bytes
    assert [r["technique"] for r in res.recommendation["runners_up"]] == ["int8-selective"]
    chosen = res.variant("int8-selective")
    assert min(f["agreement"] for f in chosen.fidelity if f["agreement"] is not None) >= 0.98


def test_a_study_of_a_degenerate_model_says_so_everywhere(tmp_path, digits, calib):
    """Zero weights into a softmax: every image gets the same uniform output, as with MobileNetV2's random init."""
    import keras
    from rich.console import Console

    from quantbench.report import report
    from quantbench.study.pipeline import run_study

    inputs = keras.Input((8, 8, 1), name="image")
    outputs = keras.layers.Dense(10, activation="softmax", kernel_initializer="zeros",
                                 name="probs")(keras.layers.Flatten()(inputs))
    res = run_study(keras.Model(inputs, outputs), digits.x_test[:60], calib, tmp_path / "s",
                    StudyConfig(techniques="float32,dynamic"))
    assert res.degenerate_outputs and "(no variance)" in res.degenerate_outputs[0]["why"]
    assert res.recommendation["metric"] == "sqnr_db" and "cannot measure a drop" in res.recommendation["summary"]
    saved = Results.load(tmp_path / "s" / "results.json")
    assert saved.degenerate_outputs == res.degenerate_outputs
    console = Console(width=200, record=True)
    report.print_table(saved, console)
    assert "Warning: the float model's output 'probs' is the same for all 60" in console.export_text()
    for name in ("report.md", "report.html"):
        assert "is the same for all 60 evaluation samples (no variance)" in (tmp_path / "s" / name).read_text()
