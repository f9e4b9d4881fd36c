"""Exact values instead of ranges (issue 25): figures whose right value is known before the code runs.

Latency from runners of known cost, top-5 where it differs from top-1, the paired drop interval on hand-made
counts (its value and its sign), its coverage by simulation, and `uncertain` both ways. All pure and fast.
"""
import time
from types import SimpleNamespace

import numpy as np
import pytest

from quantbench.core import stats
from quantbench.measure import evaluate, timing as bench
from quantbench.record.results import Results, Variant
from quantbench.study import recommend

# ---- latency from runners whose cost is known ---------------------------------------------------------


def _known_cost(seconds: float):
    """A runner that takes `seconds` of wall time, hardly more: it sleeps most of it (no CPU taken from the
    other engineers' tests on this 2-core machine), then waits out the rest on the clock the timing reads,
    so a late wake-up of the sleep is absorbed instead of added."""
    def run(i):
        deadline = time.perf_counter() + seconds
        time.sleep(seconds * 0.8)
        while time.perf_counter() < deadline:
            pass
    return run


def _fake_model(cost_s: float):
    tensor = SimpleNamespace(shape=(1, 4), dtype="float32")
    return SimpleNamespace(cost_s=cost_s, inputs=[tensor], outputs=[tensor], resizable=True, delegate_fallback=None)


COSTS = {"one": 0.001, "three": 0.003, "five": 0.005}


def _measure(monkeypatch, runner):
    """bench.measure over three variants of 1, 3 and 5 ms per call and a float model of 2 ms: the runners are
    the only thing replaced, so rounds, summaries and units are bench's own. Throughput at batch 4."""
    monkeypatch.setattr(bench, "lite_runner", lambda m, x, batch=1: runner(m.cost_s))
    monkeypatch.setattr(bench, "reference_runner", lambda source, x, batch=1: runner(0.002))
    lite = {name: _fake_model(cost) for name, cost in COSTS.items()}
    source = SimpleNamespace(lite=None, input_shapes=[(-1, 4)], output_shapes=[(-1, 4)],
                             input_dtypes=["float32"])
    x = [np.zeros((8, 4), np.float32)]
    return bench.measure(source, lite, {k: x for k in lite}, x, batch=4, rounds=30, time_budget=3.0)


@pytest.fixture
def exact_costs(monkeypatch):
    """Runners that each advance a virtual clock by their cost, the clock bench reads each round's time from:
    the figures must be the costs exactly, whatever the machine is doing."""
    now = [1000.0]

    def runner(seconds):
        def run(i):
            now[0] += seconds
        return run

    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    return _measure(monkeypatch, runner)


@pytest.fixture
def real_costs(monkeypatch):
    """The same on the real clock, the runners taking their cost in wall time."""
    return _measure(monkeypatch, _known_cost)


def test_a_5_ms_runner_reads_5_ms(exact_costs):
    lat = exact_costs["five"]["latency_ms"]
    assert lat["median"] == pytest.approx(5.0, rel=1e-9) and lat["ci95"] == pytest.approx([5.0, 5.0], rel=1e-9)
    assert lat["p90"] == pytest.approx(5.0, rel=1e-9) and lat["n"] >= 30 and lat["batch"] == 1
    assert exact_costs["keras"]["latency_ms"]["median"] == pytest.approx(2.0, rel=1e-9)


def test_1_ms_and_3_ms_runners_read_a_ratio_of_3(exact_costs):
    one, three = (exact_costs[k]["latency_ms"]["median"] for k in ("one", "three"))
    assert (one, three) == pytest.approx((1.0, 3.0), rel=1e-9)


def test_throughput_of_a_5_ms_batch_of_4_is_800_samples_per_second(exact_costs):
    thr = exact_costs["five"]["throughput"]
    assert thr["batch"] == 4 and thr["samples_per_s"] == pytest.approx(800.0, rel=1e-9)
    assert thr["ci95"] == pytest.approx([800.0, 800.0], rel=1e-9)


def test_wall_clock_runners_read_their_cost(real_costs):
    """On the real clock a shared machine adds delays, never removes them: each runner's fastest round is its
    cost give or take 5 %, whatever the load (one undisturbed round in 30 or more is enough); its median is at
    least its cost, and with three busy processes on this 2-core machine it read up to 2.4 times it."""
    fastest = {name: real_costs[name]["latency_ms"]["quantiles"]["0"] for name in (*COSTS, "keras")}
    for name, cost in {**COSTS, "keras": 0.002}.items():
        assert cost * 1e3 <= fastest[name] <= cost * 1e3 * 1.05, name
        assert cost * 1e3 <= real_costs[name]["latency_ms"]["median"] <= cost * 1e3 * 4, name
    assert fastest["three"] / fastest["one"] == pytest.approx(3.0, rel=0.05)
    assert 800 / 4 <= real_costs["five"]["throughput"]["samples_per_s"] <= 800.0


# ---- top-5 on synthetic outputs where it differs from top-1 -------------------------------------------

RANKS = [0, 0, 0, 1, 2, 3, 4, 5, 6, 9]  # where each sample's label sits among the 10 scores (0 = best)


def _ranked(ranks, labels, classes=10):
    """Probability rows in which labels[i] has the ranks[i]-th highest score."""
    rows = np.zeros((len(ranks), classes))
    for i, (r, y) in enumerate(zip(ranks, labels)):
        others = [c for c in range(classes) if c != y]
        order = others[:r] + [y] + others[r:]  # classes from best to worst
        rows[i, order] = np.arange(classes, 0, -1)
    return rows / rows.sum(axis=1, keepdims=True)


def test_top5_counts_labels_in_the_five_best_scores_and_top1_only_the_best():
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    ref = _ranked([0] * 10, labels)
    variant = _ranked(RANKS, labels)
    m = evaluate.measure({"keras": [ref], "float32": [ref], "int8-only": [variant]}, "keras", labels)
    assert m["int8-only"]["accuracy"] == 0.3   # ranks 0, 0, 0
    assert m["int8-only"]["top5"] == 0.7       # ranks 0..4; 5, 6 and 9 miss
    assert m["keras"]["accuracy"] == m["keras"]["top5"] == 1.0
    assert m["int8-only"]["agreement"] == 0.3


def test_top5_is_absent_with_5_classes_or_fewer():
    labels = np.array([0, 1, 2, 3, 4, 0])
    out = _ranked([0, 1, 2, 3, 4, 0], labels, classes=5)
    m = evaluate.measure({"keras": [out], "v": [out]}, "keras", labels)
    assert m["v"]["accuracy"] == pytest.approx(2 / 6) and m["v"]["top5"] is None


# ---- the paired drop interval: hand-made counts -------------------------------------------------------

def _paired(both_right, lost, gained, both_wrong):
    """Right/wrong of a reference and a variant on the same samples: `lost` where only the reference is right,
    `gained` where only the variant is."""
    ref = np.r_[np.ones(both_right), np.ones(lost), np.zeros(gained), np.zeros(both_wrong)].astype(bool)
    var = np.r_[np.ones(both_right), np.zeros(lost), np.ones(gained), np.zeros(both_wrong)].astype(bool)
    return ref, var


def test_paired_drop_ci_on_hand_counts():
    # 100 samples, the variant loses 6 and gains 2: drop (6 - 2) / 100 = 4 pp;
    # se = sqrt(((6 + 2) / 100 - 0.04 ** 2) / 100) = sqrt(0.0784 / 100) = 0.028, so 4 ± 1.959964 * 2.8
    assert stats.paired_drop_ci(*_paired(80, 6, 2, 12)) == pytest.approx([-1.487899, 9.487899], abs=1e-6)
    # a variant that gains more than it loses has a negative drop: the interval's sign flips with it
    assert stats.paired_drop_ci(*_paired(80, 2, 6, 12)) == pytest.approx([-9.487899, 1.487899], abs=1e-6)
    # 20 lost, none gained: 20 ± 1.959964 * sqrt((0.2 - 0.04) / 100) * 100 = 20 ± 7.839856, all above zero
    assert stats.paired_drop_ci(*_paired(70, 20, 0, 10)) == pytest.approx([12.160144, 27.839856], abs=1e-6)
    # concordant samples, right or wrong, carry no information on the difference; only n scales it
    assert stats.paired_drop_ci(*_paired(0, 6, 2, 92)) == stats.paired_drop_ci(*_paired(92, 6, 2, 0))


def test_paired_drop_ci_against_a_textbook_example():
    """Agresti, An Introduction to Categorical Data Analysis (2nd ed., 2007), §8.1: approval of the Prime
    Minister by the same 1600 people in two surveys, 794 approve both times, 150 approve then disapprove,
    86 disapprove then approve, 570 disapprove both times. The proportion approving falls from 0.59 to 0.55;
    the book's 95 % interval for the difference is 0.04 ± 1.96 × 0.0095, (0.021, 0.059)."""
    lo, hi = stats.paired_drop_ci(*_paired(794, 150, 86, 570))
    assert (lo + hi) / 2 == pytest.approx(4.0, abs=1e-9)
    assert (hi - lo) / 2 / 1.959964 == pytest.approx(0.95, abs=0.005)  # se 0.0095, in points
    assert round(lo / 100, 3) == 0.021 and round(hi / 100, 3) == 0.059


def test_paired_drop_ci_covers_the_true_drop_in_95_percent_of_simulated_studies():
    """2,000 paired studies of 450 samples (the demo's size) where the variant loses a sample with probability
    3 % and gains one with 1 %: the true drop is 2 pp. A 95 % interval must cover it about 95 % of the time."""
    rng = np.random.default_rng(25)
    n, p_lost, p_gained = 450, 0.03, 0.01
    truth = (p_lost - p_gained) * 100
    covered = above = 0
    for _ in range(2000):
        lost, gained, rest = rng.multinomial(n, [p_lost, p_gained, 1 - p_lost - p_gained])
        lo, hi = stats.paired_drop_ci(*_paired(rest, lost, gained, 0))
        covered += lo <= truth <= hi
        above += lo > truth
    assert 0.93 <= covered / 2000 <= 0.97
    assert above <= 0.05 * 2000  # misses fall on both sides, not all on one


# ---- the same counts through evaluate.measure: every field of the row ---------------------------------

def _outputs(correct, labels, wrong_class):
    """Probability rows whose top-1 is the label where `correct`, else `wrong_class` of that sample."""
    rows = np.full((len(labels), 10), 0.02)
    top = np.where(correct, labels, wrong_class)
    rows[np.arange(len(labels)), top] = 0.82
    return rows


def test_measure_reports_the_hand_counts_drop_with_its_sign():
    ref_ok, var_ok = _paired(80, 6, 2, 12)
    labels = np.arange(100) % 10
    wrong = (labels + 1) % 10  # the same wrong class for both where both are wrong: they agree there
    keras = _outputs(ref_ok, labels, wrong)
    variant = _outputs(var_ok, labels, wrong)
    m = evaluate.measure({"keras": [keras], "float32": [keras], "int8-only": [variant]}, "keras", labels)
    row = m["int8-only"]
    assert m["keras"]["accuracy"] == 0.86 and row["accuracy"] == 0.82
    assert row["drop_ci_pp"] == pytest.approx([-1.487899, 9.487899], abs=1e-6)
    assert row["accuracy_delta_pp"] == -4.0           # against float32: negative when the variant loses
    assert row["p_vs_float32"] == pytest.approx(74 / 256, rel=1e-12)  # 2 * P(B <= 2), B ~ Binomial(8, 1/2)
    assert row["accuracy_ci"] == stats.wilson(82, 100)
    assert row["agreement"] == 0.92                   # differs from the float model on the 6 + 2 discordant
    assert m["float32"]["drop_ci_pp"] == [0.0, 0.0] and m["float32"]["p_vs_float32"] == 1.0
    better = evaluate.measure({"keras": [variant], "float32": [variant], "v": [keras]}, "keras", labels)["v"]
    assert better["drop_ci_pp"] == pytest.approx([-9.487899, 1.487899], abs=1e-6)
    assert better["accuracy_delta_pp"] == 4.0


# ---- `uncertain` both ways ----------------------------------------------------------------------------

def _row(name, measured, kb):
    keep = ("accuracy", "accuracy_ci", "drop_ci_pp", "accuracy_delta_pp", "p_vs_float32", "top5", "agreement")
    return Variant(name, "converter", "ok", path=f"{name}.tflite", bytes=kb * 1024, input_dtype="float32",
                   output_dtype="float32", latency_ms={"median": 1.0}, **{k: measured[k] for k in keep})


@pytest.fixture(scope="module")
def small_drop():
    """1000 samples, the variant loses 3 and gains 1: a drop of 0.2 ± 0.391797 pp, whose interval reaches 0.59 pp."""
    ref_ok, var_ok = _paired(900, 3, 1, 96)
    labels = np.arange(1000) % 10
    wrong = (labels + 1) % 10
    keras, variant = _outputs(ref_ok, labels, wrong), _outputs(var_ok, labels, wrong)
    m = evaluate.measure({"keras": [keras], "float32": [keras], "dynamic": [variant]}, "keras", labels)
    assert m["dynamic"]["drop_ci_pp"] == pytest.approx([-0.191797, 0.591797], abs=1e-6)
    return Results("0", {}, {}, {}, {}, [_row("keras", m["keras"], 400), _row("float32", m["float32"], 130),
                                         _row("dynamic", m["dynamic"], 40)])


def test_uncertain_when_the_interval_of_the_drop_crosses_the_budget(small_drop):
    rec = recommend.choose(small_drop, max_drop_pp=0.5, target="cpu", optimize="size")
    assert rec.technique == "dynamic" and rec.uncertain is True
    assert "Uncertain: the 95 % interval of its drop reaches 0.59 pp, past the budget" in rec.summary


def test_not_uncertain_when_the_whole_interval_is_within_the_budget(small_drop):
    rec = recommend.choose(small_drop, max_drop_pp=1.0, target="cpu", optimize="size")
    assert rec.technique == "dynamic" and rec.uncertain is False
    assert "Uncertain" not in rec.summary


def test_a_reference_choice_is_never_uncertain(small_drop):
    """float32 chosen (dynamic excluded by a budget below its drop): its interval is [0, 0]."""
    rec = recommend.choose(small_drop, max_drop_pp=0.1, target="cpu", optimize="size")
    assert rec.technique == "float32" and rec.uncertain is False
    assert [e["technique"] for e in rec.excluded] == ["dynamic"]


# ---- the budget's boundary: a drop of exactly the budget is within it --------------------------------------

def _boundary(ref_acc, var_acc):
    rows = [Variant(n, "converter", "ok", path=f"{n}.tflite", bytes=kb * 1024, input_dtype="float32",
                    output_dtype="float32", accuracy=a, agreement=1.0, latency_ms={"median": 1.0})
            for n, a, kb in (("keras", ref_acc, 400), ("float32", ref_acc, 130), ("dynamic", var_acc, 40))]
    return Results("0", {}, {}, {}, {}, rows)


def test_a_drop_of_exactly_the_budget_is_within_it():
    """3 of 4 against 2 of 4 right: a drop of 25 pp, exact in binary, at a budget of 25 pp."""
    rec = recommend.choose(_boundary(0.75, 0.5), max_drop_pp=25.0, target="cpu", optimize="size")
    assert rec.technique == "dynamic" and rec.excluded == []
    rec = recommend.choose(_boundary(0.75, 0.5), max_drop_pp=24.9, target="cpu", optimize="size")
    assert rec.technique == "float32" and rec.excluded[0]["technique"] == "dynamic"


def test_one_sample_of_200_lost_is_within_a_half_point_budget():
    """(0.98 - 0.975) * 100 is 0.5000000000000004 in floating point; the budget counts whole samples."""
    rec = recommend.choose(_boundary(196 / 200, 195 / 200), max_drop_pp=0.5, target="cpu", optimize="size")
    assert rec.technique == "dynamic"
