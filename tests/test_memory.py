"""Issue 22: what each variant's interpreter holds, timing in groups that fit a budget, workers bounded by memory,
and --max-memory's checks. Tiny models only; timing from runners on a virtual clock."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from quantbench.core import memory
from quantbench.executors import local as executor
from quantbench.measure import timing as bench
from quantbench.record.results import Results
from quantbench.runtime.litert import LiteModel
from quantbench.study import tasks
from quantbench.study.config import StudyConfig

GIB = 2 ** 30


# ---- memory_bytes: measured, and plausible ------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_study(tiny_model, digits, calib, tmp_path_factory):
    from quantbench.inputs import data
    from quantbench.study.pipeline import run_study

    out = tmp_path_factory.mktemp("mem") / "study"
    run_study(tiny_model, data.Dataset([digits.x_test[:100]], digits.y_test[:100], "digits"), calib, out,
              StudyConfig(techniques=["float32", "int8-only", "dynamic"], time_budget=0.5, workers=0))
    return out


def _activation_bytes(model: LiteModel, batch: int) -> int:
    """Bytes of the tensors whose first dimension is the batch, at `batch`: the activations, inputs and outputs."""
    model.set_batch(batch)
    return sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
               for d in model.interpreter.get_tensor_details() if len(d["shape"]) and d["shape"][0] == batch)


def test_every_variant_records_what_its_interpreter_holds(small_study):
    results = Results.load(small_study / "results.json")  # the schema accepts the new field
    rows = {v.technique: v for v in results.variants}
    chunk = results.settings["chunk"]
    f32 = rows["float32"]
    floor = _activation_bytes(LiteModel(small_study / f32.path), chunk) + f32.bytes
    assert f32.memory_bytes >= floor  # at least the file and every activation at the evaluation batch
    assert f32.memory_bytes < 64 * 2 ** 20  # and not wildly more, for a 10-KB model at batch <= 32
    for name in ("int8-only", "dynamic"):
        v = rows[name]
        assert v.memory_bytes >= v.bytes + _activation_bytes(LiteModel(small_study / v.path), chunk)
    assert rows["int8-only"].memory_bytes < f32.memory_bytes  # int8 activations: a quarter of float32's
    assert rows["keras"].memory_bytes is not None and rows["keras"].memory_bytes >= 0


def test_the_report_shows_memory_and_settings_record_the_budget(small_study):
    text = (small_study / "report.md").read_text()
    assert "memory MB" in text
    mem = json.loads((small_study / "results.json").read_text())["settings"]["memory"]
    assert mem["budget_bytes"] > 0 and mem["peak_bytes"] > 0 and mem["workers_ran"] == 0
    assert mem["budget_bytes"] <= memory.DEFAULT_CAP and mem["budget_from"] == "default"
    assert [g[0] for g in mem["timing_groups"]] == ["float32"] * len(mem["timing_groups"])


def test_interpreter_memory_is_linear_in_the_batch(tiny_variants):
    m = LiteModel(tiny_variants["float32"])
    at_load = m.memory_bytes()
    m.set_batch(8)
    model = tasks.interpreter_memory(m, at_load, 1, 8)
    m.set_batch(20)
    assert model["fixed"] + 20 * model["per_sample"] == pytest.approx(m.memory_bytes(), rel=0.01)


def test_a_chunk_is_sized_by_the_scratch_kernels_allocate_at_their_first_invoke(tmp_path):
    """A (3, 39) kernel on 8 channels: int4 weights run on LiteRT's own convolution, whose im2col (936 floats a
    pixel, 11.5 MB a sample here) exists only after the first invoke when a Reshape of the batch's size comes
    before it (as in an audio model's front end: shapes known only at run time). Sized at load, the chunk was the
    study's 32 (368 MB of scratch); sized after one sample, the interpreter stays within MEMORY_BOUND."""
    import keras

    from quantbench.inputs import data
    from quantbench.study.pipeline import run_study

    inp = keras.Input((48 * 64 * 8,))
    h = keras.layers.Conv2D(8, (3, 39), padding="same", activation="relu")(keras.layers.Reshape((48, 64, 8))(inp))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h)))
    x = np.random.default_rng(0).normal(size=(40, 48 * 64 * 8)).astype(np.float32)
    results = run_study(model, data.Dataset([x], None, "noise"), x[:4], tmp_path / "study",
                        StudyConfig(techniques=["weight-only-int4"], time_budget=0.2, workers=0))
    row = next(v for v in results.variants if v.technique == "weight-only-int4")
    assert results.settings["chunk"] == 32 and row.status == "ok"
    per_sample = 48 * 64 * 936 * 4
    assert per_sample < row.memory_bytes - row.bytes <= tasks.MEMORY_BOUND  # its scratch counted, and bounded


# ---- timing groups ---------------------------------------------------------------------------------------

NEEDS = {n: {"fixed": 10, "per_sample": 1, "bytes": 0, "batch": 1} for n in ("float32", "a", "b", "c", "d")}


def test_groups_keep_float32_in_each_and_every_variant_once():
    for free in (None, 10 ** 6, 200, 100, 60, 0):
        plan = tasks.plan_timing(["float32", "a", "b", "c", "d"], NEEDS, 32, free)
        assert all(g[0] == "float32" and g.count("float32") == 1 for g in plan.groups)
        assert sorted(n for g in plan.groups for n in g[1:]) == ["a", "b", "c", "d"]


def test_a_smaller_budget_gives_more_groups_and_a_smaller_batch():
    names = ["float32", "a", "b", "c", "d"]
    counts = [len(tasks.plan_timing(names, NEEDS, 32, free).groups) for free in (None, 300, 130, 90)]
    assert counts == [1, 1, 2, 4]  # 42 bytes each at batch 32: 5 fit 300, 3 fit 130, 2 fit 90
    assert tasks.plan_timing(names, NEEDS, 32, 90).batch == 32
    low = tasks.plan_timing(names, NEEDS, 32, 60)  # 2 x (10 + b) <= 60: batch 20, one variant beside float32
    assert low.batch == 20 and len(low.groups) == 4
    assert tasks.plan_timing(names, NEEDS, 32, 0).batch == 1  # nothing fits: batch 1, one at a time, still run


def test_without_float32_groups_have_no_anchor():
    plan = tasks.plan_timing(["a", "b"], NEEDS, 4, 20)  # 14 bytes each at batch 4
    assert plan.groups == [["a"], ["b"]]


@pytest.fixture
def virtual_clock(monkeypatch):
    """Runners of known cost on a virtual clock (as tests/test_numbers.py): a per-round jitter shared by every
    runner keeps the intervals open and each ratio exact. Records which runner ran in which round of which phase."""
    now, calls = [1000.0], []

    def lite_runner(m, x, batch=1):
        phase = (m.group, batch)

        def run(i):
            calls.append((phase, m.name, i))
            now[0] += m.cost * (1 + 0.05 * (i % 7))
        return run

    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(bench, "lite_runner", lite_runner)
    def reference_runner(source, x, batch=1):
        def run(i):
            now[0] += 0.002
        return run

    monkeypatch.setattr(bench, "reference_runner", reference_runner)
    return calls


COST = {"float32": 0.002, "a": 0.001, "b": 0.004, "c": 0.003}


def _measure(groups):
    tensor = SimpleNamespace(shape=(1, 4), dtype="float32")
    counter = {"group": 0}

    def load(name):  # float32 comes first in each group: it opens the next one
        counter["group"] += name == "float32"
        return SimpleNamespace(name=name, cost=COST[name], inputs=[tensor], outputs=[tensor], resizable=True,
                               delegate_fallback=None, group=counter["group"]), None
    source = SimpleNamespace(lite=None, input_shapes=[(-1, 4)], output_shapes=[(-1, 4)], input_dtypes=["float32"])
    return bench.measure_groups(source, load, groups, [np.zeros((8, 4), np.float32)], batch=4, rounds=30,
                                time_budget=3.0)


def test_every_variant_is_timed_once_per_round_of_its_group(virtual_clock):
    _measure([["float32", "a"], ["float32", "b", "c"]])
    by_phase: dict = {}
    for phase, name, i in virtual_clock:
        by_phase.setdefault(phase, {}).setdefault(i, []).append(name)
    assert len(by_phase) == 4  # two groups, a batch-1 and a throughput phase each
    for phase, rounds in by_phase.items():
        members = {n for names in rounds.values() for n in names}
        assert "float32" in members
        for i, names in rounds.items():  # warm-up rounds come first with the same indices, and a batch-1 timed
            # call follows an untimed one of the same round: every member is called equally often in a round
            assert {names.count(n) for n in members} in ({1}, {2}, {3})


def test_ratios_in_groups_match_all_at_once_within_their_intervals(virtual_clock):
    together = _measure([["float32", "a", "b", "c"]])
    grouped = _measure([["float32", "a"], ["float32", "b"], ["float32", "c"]])
    for name in ("a", "b", "c"):
        one, two = together[name]["latency_ms"], grouped[name]["latency_ms"]
        assert one["vs_float32"]["median"] == pytest.approx(COST[name] / COST["float32"], rel=1e-6)
        lo, hi = two["vs_float32"]["ci95"]
        assert lo <= one["vs_float32"]["median"] <= hi
        assert two["group"] == ["a", "b", "c"].index(name) + 1 and "group" not in one
    assert "vs_float32" not in grouped["float32"]["latency_ms"]


# ---- workers bounded by memory ---------------------------------------------------------------------------

def test_workers_that_fit():
    assert memory.workers_that_fit(4, 3 * GIB, GIB // 2, 1.2 * GIB) == 2
    assert memory.workers_that_fit(8, None, GIB, GIB) == 8  # no budget: as asked
    assert memory.workers_that_fit(4, GIB, GIB, GIB) == 1  # none fits: one all the same, so the study runs
    assert memory.workers_that_fit(2, 100 * GIB, GIB, GIB) == 2  # never more than asked
    assert memory.workers_that_fit(0, GIB, 0, GIB) == 0  # in this process


def test_a_budget_too_small_for_a_second_worker_runs_one():
    with executor.Workers(2, budget=1) as run:
        done = run.run([executor.Task(f"t{k}", os.getpid) for k in range(4)])
    assert len(set(done.values())) == 1 and run.ran == 1 and run.per_worker > 0


def test_the_default_budget_is_half_the_available_memory_at_most_3_gib(monkeypatch):
    monkeypatch.setattr(memory, "available", lambda: 4 * GIB)
    assert memory.budget() == 2 * GIB
    monkeypatch.setattr(memory, "available", lambda: 20 * GIB)
    assert memory.budget() == 3 * GIB
    assert memory.budget(1.5) == int(1.5 * GIB)


# ---- --max-memory on the command line --------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_max_memory_refuses_a_bad_value_in_one_line(value, tmp_path):
    for command in (["compare", str(tmp_path / "model.keras"), "--data", str(tmp_path / "d.npz")], ["demo"]):
        proc = subprocess.run([sys.executable, "-m", "quantbench", *command, "--max-memory", value,
                               "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [
            f"quantbench: error: --max-memory is '{value}'. Expected a positive number of GiB, e.g. 2 or 0.5. Fix: pass "
            "--max-memory 3, or leave it out for half the available memory (at most 3 GiB)."]
        assert not (tmp_path / "out").exists()


def test_a_second_worker_waits_for_two_conversions_peaks():
    """Leaky tasks (conversions) grow a worker most: with a budget, no second worker before two of them are
    measured, so the first two run in the same worker, whatever the budget."""
    with executor.Workers(2, budget=100 * GIB) as run:
        done = run.run([executor.Task(f"t{k}", os.getpid, leaky=True) for k in range(4)])
    assert done["t0"] == done["t1"] and run.leaky_measured == 4


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@pytest.mark.parametrize("share, workers", [(0.9, 1), (0.75, 2)])
def test_a_second_worker_starts_only_if_both_fit_within_leak_room_of_the_budget(share, workers):
    """Workers grow after their peak is measured (each conversion leaks), so a second one starts only if the main
    process and both workers at the measured peak fit LEAK_ROOM (85 %) of the budget, not the whole of it."""
    with executor.Workers(2, budget=100 * GIB) as run:
        run.run([executor.Task("first", os.getpid)])  # one worker, its peak measured
        run.budget = int((memory.rss() + 2 * run.per_worker) / share)  # both fit 90 % of it, or 75 %
        done = run.run([executor.Task(f"t{k}", _pid_after, (0.5,)) for k in range(4)])
    assert len(set(done.values())) == run.ran == workers


def _pid_holding(mib: int) -> int:
    """A conversion's transient: `mib` MiB written (so resident), freed on return."""
    held = b"\x01" * (mib * 2 ** 20)
    return os.getpid() + 0 * len(held)


def test_a_light_conversion_does_not_keep_a_worker_when_a_heavier_one_would_not_fit():
    """The next conversion may be the heaviest seen so far: a worker is kept after a light one only if the main
    process plus the largest peak any worker reached fits LEAK_ROOM of the budget (not only its own peak)."""
    with executor.Workers(1, budget=100 * GIB) as run:
        run.run([executor.Task("heavy", _pid_holding, (400,), leaky=True)])  # a peak of 400 MiB, measured
        assert run.per_worker > 400 * 2 ** 20
        run.budget = int((memory.rss() + run.per_worker - 100 * 2 ** 20) / executor.LEAK_ROOM)  # it does not fit
        light = [run.run([executor.Task(f"c{k}", _pid_holding, (1,), leaky=True)])[f"c{k}"] for k in range(3)]
    assert len(set(light)) == 3  # each light conversion's worker let go (the first ran in the heavy one's): the
    # heavy one would not have fit in a fresh worker either


def test_a_worker_whose_peak_leaves_no_room_is_replaced_after_each_conversion():
    """A tight budget: main process plus the worker's peak past LEAK_ROOM of it, so the next conversion starts in a
    fresh worker (what the converter leaked goes with the old one); tasks that leak nothing keep their worker."""
    tight = int((memory.rss() + 5 * 2 ** 20) / executor.LEAK_ROOM)  # less than main + any worker's peak
    with executor.Workers(1, budget=tight) as run:
        leaky = [run.run([executor.Task(f"c{k}", os.getpid, leaky=True)])[f"c{k}"] for k in range(3)]
        plain = [run.run([executor.Task(f"p{k}", os.getpid)])[f"p{k}"] for k in range(3)]
    assert len(set(leaky)) == 3 and len(set(plain)) == 1
    with executor.Workers(1, budget=100 * GIB) as run:  # room: one worker for all
        roomy = [run.run([executor.Task(f"c{k}", os.getpid, leaky=True)])[f"c{k}"] for k in range(3)]
    assert len(set(roomy)) == 1
