import dataclasses

from quantbench.record.results import Results, Variant
from quantbench.report import plots


def test_pareto_front():
    # (cost, quality): lower cost and higher quality win; equal points are both on the front
    points = [(40, 97.3), (42, 97.6), (44, 97.3), (70, 97.3), (133, 97.3), (42, 97.6), (30, 90.0)]
    assert plots.pareto_front(points) == [True, True, False, False, False, True, True]


def variant(name, kb, agreement, ms, accuracy=None):
    return Variant(name, "converter", "ok", bytes=int(kb * 1024), agreement=agreement, accuracy=accuracy,
                   latency_ms={"median": ms, "ci95": [ms * 0.99, ms * 1.01], "n": 50,
                               "quantiles": {str(q): ms for q in (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 100)}})


def results(variants):
    return Results("0.1.0", {}, {}, {}, {}, variants)


def test_without_labels_the_plots_show_agreement():
    r = results([variant("keras", 400, 1.0, 1.0), variant("float32", 130, 1.0, 0.04),
                 variant("int8-only", 41, 0.99, 0.05)])
    figs = plots.figures(r)
    assert [f.name for f in figs] == [plots.NAMES[k] for k in ("size", "latency", "distribution")]
    assert figs[0].title == "Top-1 agreement with the Keras model vs size"
    assert "int8-only (41 KB, 99.00 %)" in figs[0].alt and "keras" not in figs[0].alt  # the reference is left out
    assert "keras median" in figs[2].alt  # but its latency is shown


def test_nothing_to_plot():
    failed = results([Variant("float32", "converter", "failed", error="x")])
    assert plots.figures(failed) == []
    no_quantiles = results([dataclasses.replace(variant("float32", 130, 1.0, 0.04), latency_ms={"median": 0.04})])
    assert [f.name for f in plots.figures(no_quantiles)] == ["accuracy_vs_size.png", "accuracy_vs_latency.png"]


def test_calibration_sizes_plot():
    r = dataclasses.replace(results([variant("float32", 130, 1.0, 0.04)]), studies={"calibration_sizes": {
        "technique": "int8-only", "rows": [
            {"samples": 1, "accuracy": 0.9, "accuracy_ci": [0.85, 0.93], "agreement": 0.95, "bytes": 10},
            {"samples": 100, "accuracy": 0.97, "accuracy_ci": [0.95, 0.98], "agreement": 1.0, "bytes": 10}]}})
    fig = [f for f in plots.figures(r) if f.name == plots.NAMES["calibration"]][0]
    assert fig.alt == "Line plot: 1 samples 90.00 %, 100 samples 97.00 %" and fig.png.startswith(b"\x89PNG")


def test_calibration_sizes_without_accuracy_or_agreement_draw_nothing():
    r = dataclasses.replace(results([variant("float32", 130, 1.0, 0.04)]), studies={"calibration_sizes": {
        "technique": "int8-only", "rows": [{"samples": 1, "accuracy": None, "agreement": None, "bytes": 10}]}})
    assert plots.calibration_sizes(r) is None


def test_calibration_and_arena_plots_mark_the_recommended_variant():
    mcu = {"runs": True, "arena_bytes": 7000, "flash_bytes": 41000, "accuracy": 0.96, "wrong": False, "samples": 450}
    rows = [dataclasses.replace(variant("float32", 130, 1.0, 0.04, accuracy=0.97), mcu={**mcu, "arena_bytes": 15000}),
            dataclasses.replace(variant("int8-only", 41, 0.99, 0.05, accuracy=0.95), mcu=mcu)]
    r = dataclasses.replace(results(rows), recommendation={"technique": "int8-only"}, studies={"calibration_sizes": {
        "technique": "int8-only", "rows": [
            {"samples": 1, "accuracy": 0.9, "accuracy_ci": [0.85, 0.93], "agreement": 0.95, "bytes": 10},
            {"samples": 100, "accuracy": 0.97, "accuracy_ci": [0.95, 0.98], "agreement": 1.0, "bytes": 10}]}})
    figs = {f.name: f for f in plots.figures(r)}
    assert figs[plots.NAMES["calibration"]].caption.endswith(
        "The dashed line is the recommended variant, int8-only, at its accuracy in the table.")
    arena = figs[plots.NAMES["arena"]]
    assert "int8-only (recommended) (6.84 KB, 96.00 %)" in arena.alt
    assert arena.caption.endswith("The ringed point is the recommended variant, int8-only.")
    nothing = dataclasses.replace(r, recommendation={"technique": None, "summary": "No variant meets the budget."})
    assert all(f.caption.endswith(" No variant is recommended.") for f in plots.figures(nothing))
    gone = dataclasses.replace(r, recommendation={"technique": "dynamic"})  # not among the plotted rows
    assert plots.quality_vs(gone, "size").caption.endswith(" The recommended variant, dynamic, has no point here.")
