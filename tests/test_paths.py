"""Every path a user can take runs in a test (issue 25): evaluation over several shards, --calib-sizes,
--threads 2, --target gpu, --optimize latency; each with assertions whose outcome the setup fixes."""
import json

import numpy as np
import pytest

import plain_litert
from quantbench.cli import main
from quantbench.engines.converter import convert
from quantbench.inputs import data
from quantbench.inputs.data import Dataset
from quantbench.measure import timing as bench
from quantbench.record.results import Results
from quantbench.study import pipeline as study
from quantbench.study.config import StudyConfig

N = 230  # evaluation samples: eight shards of 32 (the last of 6) when study.SHARD is 32 (one chunk)
TECHNIQUES = "float32,int8-only,dynamic"
SIZES = [1, 40]


def _study(model, digits, calib, out, calib_sizes=None, seed=0, **kwargs):
    return study.run_study(model, Dataset([digits.x_test[:N]], digits.y_test[:N], "test"), calib, out,
                           StudyConfig(techniques=TECHNIQUES, time_budget=0.2, calib_sizes=calib_sizes, seed=seed),
                           **kwargs)


@pytest.fixture(scope="module")
def one_shard(tiny_model, digits, calib, tmp_path_factory):
    assert study.SHARD >= N
    return _study(tiny_model, digits, calib, tmp_path_factory.mktemp("one") / "s")


@pytest.fixture(scope="module")
def many_shards(tiny_model, digits, calib, tmp_path_factory):
    """The same study with 32 samples per shard, and with --calib-sizes 1,40 drawn from the training split."""
    from quantbench.measure import evaluate

    merged = []
    real_merge = evaluate.Stream.merge

    def counted(self, later):
        merged.append(later.n)
        return real_merge(self, later)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "SHARD", 32)
        mp.setattr(evaluate.Stream, "merge", counted)
        folder = tmp_path_factory.mktemp("eight") / "s"
        res = _study(tiny_model, digits, calib, folder, calib_sizes=SIZES, calib_pool=digits.x_train, seed=0)
    return res, merged, folder


FIGURES = ("accuracy", "accuracy_ci", "drop_ci_pp", "accuracy_delta_pp", "p_vs_float32", "top5", "agreement",
           "sqnr_db")


def test_several_shards_give_the_figures_of_one(one_shard, many_shards):
    res, merged, _ = many_shards
    assert merged == ([32] * 6 + [6]) * 4  # the float model's outputs and each of the three variants
    assert res.data["eval_samples"] == one_shard.data["eval_samples"] == N
    for one, many in zip(one_shard.variants, res.variants):
        assert one.technique == many.technique and many.ok
        for field in FIGURES:
            assert getattr(many, field) == getattr(one, field), (one.technique, field)
        if one.kl is None:
            assert many.kl is None
        else:  # a sum of per-shard sums: the order of additions differs
            assert many.kl == pytest.approx(one.kl, rel=1e-12)
        assert [{k: f[k] for k in ("output", "agreement", "sqnr_db")} for f in many.fidelity] == \
            [{k: f[k] for k in ("output", "agreement", "sqnr_db")} for f in one.fidelity]
        assert [f["max_abs_err"] for f in many.fidelity] == [f["max_abs_err"] for f in one.fidelity]
    assert res.degenerate_outputs == one_shard.degenerate_outputs == []


def test_several_shards_count_every_sample(many_shards, digits):
    """Accuracy over eight shards is the hits of the whole evaluation set, counted outside quantbench."""
    res, _, folder = many_shards
    x, y = digits.x_test[:N], digits.y_test[:N]
    for name in ("float32", "int8-only", "dynamic"):
        assert res.variant(name).accuracy == plain_litert.hits(folder / res.variant(name).path, x, y) / N, name


def test_calib_sizes_rows_equal_a_direct_conversion_at_that_size(many_shards, tiny_model, digits):
    res, _, _ = many_shards
    study_ = res.studies["calibration_sizes"]
    assert study_["technique"] == "int8-only" and study_["samples"] == N
    assert [row["samples"] for row in study_["rows"]] == SIZES
    x, y = digits.x_test[:N], digits.y_test[:N]
    for row in study_["rows"]:
        content = convert(tiny_model, "int8-only", data.calibration_sample(digits.x_train, row["samples"], 0)).content
        assert row["bytes"] == len(content)
        assert row["accuracy"] == plain_litert.hits(content, x, y) / N, row["samples"]
    # one sample calibrates worse than 40 (197 against 206 of 230 right): the rows are not one conversion repeated
    first, second = study_["rows"]
    assert first["accuracy"] < second["accuracy"]


# ---- the command line: --threads 2, --target gpu, --optimize latency ------------------------------------

def _compare(tiny_keras_path, digits_npz, out, *args):
    test, train = digits_npz
    code = main(["compare", str(tiny_keras_path), "--data", str(test), "--calib", str(train), "--out", str(out),
                 "--calib-size", "50", "--time-budget", "0.3", "--quiet", *args])
    assert code == 0
    return Results.load(out / "results.json")


def test_threads_2_times_every_variant_on_two_threads(tiny_keras_path, digits_npz, tmp_path, monkeypatch):
    import ai_edge_litert.interpreter as litert

    timed = []
    real_runner = bench.lite_runner

    def spy(m, x, batch=1):
        timed.append((m.path.stem, m.num_threads))
        return real_runner(m, x, batch)

    threads = []
    real_interpreter = litert.Interpreter

    class Counting(real_interpreter):
        def __init__(self, *args, **kwargs):
            threads.append(kwargs.get("num_threads"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(bench, "lite_runner", spy)
    monkeypatch.setattr(litert, "Interpreter", Counting)
    res = _compare(tiny_keras_path, digits_npz, tmp_path / "s", "--techniques", "float32,int8-only", "--threads", "2")
    assert res.machine["threads"] == 2 and res.settings["threads"] == 2
    assert sorted(set(timed)) == [("float32", 2), ("int8-only", 2)]  # batch 1, then throughput
    assert 2 in threads  # the interpreters LiteRT made for the timing were asked for two threads
    assert all(v.latency_ms["n"] >= 1 for v in res.variants)
    assert "2 threads" in (tmp_path / "s" / "report.md").read_text()


def test_calib_sizes_option_on_the_command_line(tiny_keras_path, tiny_model, digits_npz, digits, tmp_path):
    """`--calib-sizes 1,40` with `--calib train.npz`: the sizes are drawn from the whole calibration file, and each
    row is the accuracy of a direct conversion with that draw on the first 256 evaluation samples."""
    res = _compare(tiny_keras_path, digits_npz, tmp_path / "s", "--techniques", "float32,int8-only",
                   "--calib-sizes", "1,40")
    study_ = res.studies["calibration_sizes"]
    assert study_["samples"] == 256 and [row["samples"] for row in study_["rows"]] == [1, 40]
    x, y = digits.x_test[:256], digits.y_test[:256]
    for row in study_["rows"]:
        content = convert(tiny_model, "int8-only", data.calibration_sample(digits.x_train, row["samples"], 0)).content
        assert row["bytes"] == len(content) and row["accuracy"] == plain_litert.hits(content, x, y) / 256
    assert study_["rows"][0]["accuracy"] < study_["rows"][1]["accuracy"]
    assert (tmp_path / "s" / "calibration_sizes.png").stat().st_size > 10_000


def test_target_gpu_keeps_float_compute_and_ships_float16(tiny_keras_path, digits_npz, tmp_path):
    res = _compare(tiny_keras_path, digits_npz, tmp_path / "s", "--techniques", "float32,dynamic,int8-only,float16",
                   "--target", "gpu", "--max-accuracy-drop", "5")
    status = {v.technique: v.status for v in res.variants}
    assert status == {"keras": "ok", "float32": "ok", "float16": "ok", "dynamic": "skipped", "int8-only": "skipped"}
    assert "cannot serve --target gpu" in res.variant("dynamic").error
    rec = res.recommendation
    assert rec["target"] == "gpu" and rec["technique"] == "float16"
    assert res.variant("float16").bytes < res.variant("float32").bytes
    assert (tmp_path / "s" / "recommended.tflite").read_bytes() == (tmp_path / "s" / "float16.tflite").read_bytes()
    assert [r["technique"] for r in rec["runners_up"]] == ["float32"]


COST_MS = {"float32": 1.5, "float16": 0.5, "int8-only": 3.0, "keras": 4.0}  # the smallest file is the slowest here


@pytest.fixture
def virtual_clock(monkeypatch):
    """Each timed call advances the clock bench reads by its known cost: the study's latencies are the costs
    exactly, so which variant is fastest does not depend on the machine's load."""
    from types import SimpleNamespace

    now = [1000.0]

    def runner(ms):
        def run(i):
            now[0] += ms / 1e3
        return run

    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(bench, "lite_runner", lambda m, x, batch=1: runner(COST_MS[m.path.stem]))
    monkeypatch.setattr(bench, "reference_runner", lambda source, x, batch=1: runner(COST_MS["keras"]))


@pytest.mark.parametrize("optimize,chosen,runners_up", [("latency", "float16", ["float32", "int8-only"]),
                                                         ("size", "int8-only", ["float16", "float32"])])
def test_optimize_latency_ships_the_fastest_and_size_the_smallest(tiny_keras_path, digits_npz, tmp_path, virtual_clock,
                                                                  optimize, chosen, runners_up):
    res = _compare(tiny_keras_path, digits_npz, tmp_path / "s", "--techniques", "float32,float16,int8-only",
                   "--optimize", optimize, "--max-accuracy-drop", "5")
    for v in res.variants:  # the study reports the known costs, in ms
        assert v.latency_ms["median"] == pytest.approx(COST_MS[v.technique], rel=1e-9), v.technique
    assert res.variant("int8-only").bytes < res.variant("float16").bytes < res.variant("float32").bytes
    rec = res.recommendation
    assert rec["optimize"] == optimize and rec["technique"] == chosen
    assert [r["technique"] for r in rec["runners_up"]] == runners_up
    assert ("fastest here" if optimize == "latency" else "the smallest of") in rec["summary"]
    assert (tmp_path / "s" / "recommended.tflite").read_bytes() == (tmp_path / "s" / f"{chosen}.tflite").read_bytes()
    printed = json.loads((tmp_path / "s" / "results.json").read_text())["settings"]
    assert printed["optimize"] == optimize
