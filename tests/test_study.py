"""The demo end to end: the checks of the reference-experiment issue, on the real default demo."""
import json
import subprocess
import sys

import pytest

import quantbench
from quantbench.engines.techniques import DEFAULT_TECHNIQUES
from quantbench.record.results import Results

VARIANT_KEYS = {"technique", "status", "error", "path", "bytes", "input_dtype", "output_dtype",
                "accuracy", "agreement", "latency_ms", "convert_s", "engine",
                "accuracy_ci", "p_vs_float32", "sqnr_db", "kl", "throughput"}


@pytest.fixture(scope="session")
def demo_results(demo_cli):
    return Results.load(demo_cli[0] / "results.json")


def test_demo_writes_every_technique_ok(demo_cli, demo_results):
    out, proc = demo_cli
    assert [v.technique for v in demo_results.variants] == ["keras", *DEFAULT_TECHNIQUES]
    assert all(v.status == "ok" for v in demo_results.variants)
    for v in demo_results.variants:
        assert (out / v.path).stat().st_size == v.bytes
    raw = json.loads((out / "results.json").read_text())
    for key in ("quantbench_version", "model", "data", "machine", "variants"):
        assert key in raw
    for row in raw["variants"]:
        assert VARIANT_KEYS <= set(row)
        lat = row["latency_ms"]
        assert lat["ci95"][0] <= lat["median"] <= lat["ci95"][1] <= lat["p99"]
        # rounds run: every variant once a round; the Keras row in rounds of its own
        assert lat["n"] >= 1 and (row["technique"] == "keras" or lat["n"] == raw["variants"][1]["latency_ms"]["n"])
        assert lat["stopped"] in ("converged", "budget", "max rounds") and row["throughput"]["stopped"]
        assert row["throughput"]["batch"] == row["throughput"]["batch_asked"] == 32
        assert row["throughput"]["samples_per_s"] > 0
        assert row["accuracy_ci"][0] <= row["accuracy"] <= row["accuracy_ci"][1]
    assert raw["machine"]["threads"] == 1 and raw["settings"]["batch"] == 32 and "int8_dot" in raw["machine"]
    assert raw["settings"]["time_budget_s"] == 10.0
    assert json.loads(proc.stdout) == raw  # --json prints the results object


def test_demo_writes_the_report_from_its_results(demo_cli, demo_results, tmp_path):
    out, _ = demo_cli
    for name in ("report.md", "report.html", "accuracy_vs_size.png", "accuracy_vs_latency.png", "latency.png"):
        assert (out / name).stat().st_size > 0
    from quantbench.report import report

    report.write(Results.load(out / "results.json"), tmp_path)  # the JSON alone gives the same report
    assert (tmp_path / "report.md").read_text() == (out / "report.md").read_text()


def test_fidelity_and_tests_against_float32(demo_results):
    f32 = demo_results.variant("float32")
    assert f32.p_vs_float32 == 1.0 and f32.accuracy_delta_pp == 0.0
    assert f32.sqnr_db > 80  # the same float network: only rounding differs from Keras
    for v in demo_results.variants[1:]:
        assert 0 <= v.p_vs_float32 <= 1 and v.kl >= 0
    int8 = demo_results.variant("int8-only")
    assert 15 < int8.sqnr_db < f32.sqnr_db and int8.kl > f32.kl


def test_demo_output_is_quiet(demo_cli):
    _, proc = demo_cli
    for noise in ("Saved artifact", "XNNPACK", "WARNING", "absl", "cuda"):
        assert noise not in proc.stderr


def test_integer_only_keeps_its_accuracy(demo_results):
    f32 = demo_results.variant("float32").accuracy
    assert f32 > 0.9
    for name in ("int8-only", "uint8-only"):
        assert abs(demo_results.variant(name).accuracy - f32) <= 0.005, name


def test_sizes_shrink_as_promised(demo_results):
    f32 = demo_results.variant("float32").bytes
    assert demo_results.variant("int8-only").bytes <= 0.33 * f32
    assert demo_results.variant("float16").bytes <= 0.55 * f32


def test_io_dtypes_are_reported_truthfully(demo_cli, demo_results):
    out, _ = demo_cli
    for v in demo_results.variants[1:]:
        m = quantbench.load(out / v.path)
        assert v.input_dtype == m.inputs[0].dtype and v.output_dtype == m.outputs[0].dtype
    expected = {"float32": "float32", "dynamic": "float32", "int8-fallback": "float32",
                "float16": "float32", "int8-only": "int8", "uint8-only": "uint8"}
    for name, dtype in expected.items():
        assert demo_results.variant(name).input_dtype == dtype
        assert demo_results.variant(name).output_dtype == dtype
    assert demo_results.variant("int16x8").input_dtype in ("int16", "float32")


def test_same_seed_same_accuracy(demo_results, tmp_path):
    again = quantbench.demo(out=tmp_path / "again")
    assert [v.accuracy for v in again.variants] == [v.accuracy for v in demo_results.variants]
    assert [v.agreement for v in again.variants] == [v.agreement for v in demo_results.variants]
    for field in ("accuracy_ci", "p_vs_float32", "sqnr_db", "kl"):
        assert [getattr(v, field) for v in again.variants] == [getattr(v, field) for v in demo_results.variants]


def test_calibration_comes_from_the_training_split(demo_results):
    assert demo_results.data["calibration"]["from"] == "train split"
    assert demo_results.data["eval_samples"] == 450 and demo_results.data["train"] == 1347


def test_recommends_the_smallest_within_budget(demo_cli, demo_results):
    out, _ = demo_cli
    rec = demo_results.recommendation
    ref = demo_results.variant("keras").accuracy
    within = [v for v in demo_results.variants[1:] if v.ok and (ref - v.accuracy) * 100 <= 0.5]
    best = min(within, key=lambda v: v.bytes)
    assert rec["technique"] == best.technique and rec["max_drop_pp"] == 0.5
    assert (out / "recommended.tflite").read_bytes() == (out / best.path).read_bytes()
    assert rec["runners_up"] and "Runners-up: " + rec["runners_up"][0]["technique"] in rec["summary"]
    assert [b["target"] for b in rec["decision_tree"]] == ["mcu", "int-only", "gpu", "cpu"]
    assert demo_results.studies["layer_errors"]["rows"]
    assert "## Recommendation" in (out / "report.md").read_text()
