import json
import re
import time

import numpy as np
import pytest

import quantbench
from quantbench import api
from quantbench.core import stats
from quantbench.core.progress import Silent
from quantbench.measure import timing as bench
from quantbench.runtime.litert import float_range, generated_inputs
from quantbench.report.text import render


def test_latency_times_every_runner_every_round_in_shuffled_order():
    calls = []
    runners = {name: (lambda i, name=name: calls.append((name, i))) for name in "abcd"}
    timing = bench.latency(runners, 20, warmup=2)
    assert timing.rounds == 20 and timing.stopped == "max rounds"
    assert all(t.shape == (20,) and np.all(t >= 0) for t in timing.times.values())
    timed = calls[4 * 2:]  # after each runner's warm-up
    rounds = [timed[k:k + 4] for k in range(0, len(timed), 4)]
    assert all(sorted(n for n, _ in r) == list("abcd") and {i for _, i in r} == {k} for k, r in enumerate(rounds))
    orders = {tuple(n for n, _ in r) for r in rounds}
    assert len(orders) > 1  # not one fixed order, where each variant always follows the same neighbour
    calls.clear()
    bench.latency(runners, 20, warmup=2)
    assert [r for r in calls[8:]] == timed  # seeded: the same order next time


def test_a_timed_call_follows_warm_calls_of_the_same_runner():
    calls = []
    runners = {name: (lambda i, name=name: calls.append((name, i))) for name in "ab"}
    timing = bench.latency(runners, 5, warmup=0, warm_calls=2)
    assert timing.rounds == 5 and len(calls) == 2 * 5 * 3
    triples = [calls[k:k + 3] for k in range(0, len(calls), 3)]
    assert all(len(set(t)) == 1 for t in triples)  # two untimed calls, then the timed one, of one runner, one round
    assert sorted(t[0] for t in triples) == [(n, r) for n in "ab" for r in range(5)]


def test_the_warm_call_is_the_timed_ones_neighbour_in_a_study_phase(monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "latency", lambda *a, **k: seen.append(k["warm_calls"]) or bench.Timing(
        {"x": np.ones(40)}, 40, "converged"))
    for throughput in (False, True):
        bench._phase({"x": lambda i: None}, {"x": 1}, 1, 1, 1.0, Silent(), min_rounds=1, max_rounds=2, rel_ci=0.1,
                     seed=0, throughput_phase=throughput)
    assert seen == [bench.WARM_CALLS, 0] and bench.WARM_CALLS == 1


def test_summarize():
    ms = np.random.default_rng(0).permutation(np.arange(1, 101, dtype=float))  # in the order the rounds ran
    s = bench.summarize(ms)
    assert s["median"] == 50.5 and s["n"] == 100
    lo, hi = s["ci95"]
    assert s["ci95"] == stats.median_ci_series(ms) and lo <= 40.0 and hi >= 61.0  # never narrower than the plain
    trend = bench.summarize(np.sort(ms))["ci95"]  # the machine slowing down all along: a much wider interval
    assert trend[0] < lo and trend[1] > hi
    assert s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert list(s["quantiles"]) == [str(q) for q in bench.QUANTILES]
    assert s["quantiles"]["0"] == 1.0 and s["quantiles"]["100"] == 100.0 and s["quantiles"]["50"] == 50.5


@pytest.mark.parametrize("n", [1, 3, 5])
def test_too_few_rounds_have_no_interval_and_say_how_many(n):
    ms = np.arange(1, n + 1, dtype=float) * 100
    s, t = bench.summarize(ms), bench.throughput(ms, batch=8)
    assert s["ci95"] is None and s["n"] == n and t["ci95"] is None and t["n"] == n
    assert s["median"] == float(np.median(ms))
    assert bench.summarize(np.arange(1, 7, dtype=float))["ci95"] == [1.0, 6.0]  # from 6 rounds: min to max


def test_throughput_from_batch_times():
    t = bench.throughput(np.full(30, 2.0), batch=32)  # 2 ms per batch of 32
    assert t == {"batch": 32, "samples_per_s": 16000.0, "ci95": [16000.0, 16000.0], "n": 30}
    t = bench.throughput(np.arange(1, 31, dtype=float), batch=8)
    lo, hi = t["ci95"]
    assert lo < t["samples_per_s"] < hi


def test_batches_whole_and_repeated():
    x = np.arange(10)[:, None]
    assert [b[0].ravel().tolist() for b in bench._batches([x], 4)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert bench._batches([x[:3]], 4)[0][0].ravel().tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize("batch", [1, 4])
def test_lite_runner_runs_the_quantized_model(tiny_variants, digits, batch):
    m = quantbench.load(tiny_variants["int8-only"])
    run = bench.lite_runner(m, digits.x_test[:12], batch)
    raw = run(1)
    assert len(raw) == 1 and raw[0].shape == (batch, 10) and raw[0].dtype == np.int8
    expected = m.predict(m.prepare(digits.x_test[batch:2 * batch])[0], raw=True)
    np.testing.assert_array_equal(raw[0], expected)


class FakeClock:
    """Seconds that pass only when a runner says so: budgets tested without waiting."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_latency_stops_when_the_budget_is_spent_after_a_whole_round():
    clock, calls = FakeClock(), []

    def make(name, cost):
        def run(i):
            calls.append(name)
            clock.now += cost
        return run
    runners = {"a": make("a", 0.1), "b": make("b", 0.3)}
    timing = bench.latency(runners, 1000, warmup=0, budget_s=1.0, clock=clock)
    assert timing.stopped == "budget" and timing.rounds == 3  # 0.4 s a round: 1.2 s after the third
    assert calls.count("a") == calls.count("b") == 3 and all(len(t) == 3 for t in timing.times.values())


def test_latency_warm_up_takes_at_most_a_tenth_of_the_budget_and_one_round_always_runs():
    clock = FakeClock()
    warm = []

    def run(i):
        warm.append(i)
        clock.now += 5.0  # one call is longer than the whole budget
    timing = bench.latency({"slow": run}, 1000, warmup=10, budget_s=1.0, clock=clock)
    assert warm == [0, 0] and timing.rounds == 1 and timing.stopped == "budget"


def test_latency_stops_early_once_every_median_is_known():
    import time

    runners = {k: (lambda i: time.sleep(0.002)) for k in "ab"}
    timing = bench.latency(runners, 1000, warmup=1, min_rounds=10, rel_ci=0.25)
    assert timing.stopped == "converged" and 10 <= timing.rounds < 1000
    assert bench.converged(timing.times, 0.25)
    # a runner whose times spread over 1..100 ms is not known within ±25 % after 10 rounds
    assert not bench.converged({"a": np.linspace(1, 100, 10)}, 0.25)


def test_latency_converges_no_sooner_than_min_seconds():
    clock = FakeClock()

    def run(i):
        clock.now += 1 / 128  # steady (and exact in binary): converged after min_rounds, were it not for min_seconds
    timing = bench.latency({"a": run}, 100_000, warmup=0, min_rounds=10, rel_ci=0.25, min_seconds=2.0, clock=clock)
    assert timing.stopped == "converged" and 256 <= timing.rounds <= 282  # 2 s of rounds, checked every 10 %
    short = bench.latency({"a": run}, 100_000, warmup=0, min_rounds=10, rel_ci=0.25, clock=clock)
    assert short.stopped == "converged" and short.rounds < 100  # without it: as soon as the medians are known
    # the budget still comes first
    capped = bench.latency({"a": run}, 100_000, warmup=0, budget_s=0.5, min_rounds=10, rel_ci=0.25,
                           min_seconds=2.0, clock=clock)
    assert capped.stopped == "budget" and capped.rounds == 64


def test_a_phase_that_overruns_takes_nothing_from_the_next():
    def quick(size):
        return {"v": (lambda i: None, size)}

    def slow_to_make(size):  # a Keras model traced for each batch size: seconds before its first round
        time.sleep(0.3)
        return {"keras": (lambda i: None, size)}

    result, _ = bench.run_phases([("", 1, quick), ("keras", 1, slow_to_make)], [4], 4, 0.4, Silent(),
                             rounds=10 ** 9, max_rounds=10 ** 9, rel_ci=bench.REL_CI, memory_bound=2 ** 20, seed=0)
    for name in ("v", "keras"):  # each phase its 0.1 s, after 0.3 s of making the Keras runners
        assert result[name]["latency_ms"]["stopped"] == result[name]["throughput"]["stopped"] == "budget"
        assert result[name]["latency_ms"]["n"] > 100 and result[name]["throughput"]["n"] > 100


def test_fit_batch_keeps_one_models_tensors_within_the_bound():
    assert bench.fit_batch(32, [4 * 64 + 40, 64 + 10]) == 32
    assert bench.fit_batch(32, [3 * 2 ** 20], bound=64 * 2 ** 20) == 21
    assert bench.fit_batch(32, [100 * 2 ** 20]) == 1  # larger than the bound: still one sample


@pytest.fixture(scope="session")
def fixed_batch_tflite(tmp_path_factory):
    """A float model whose batch dimension is fixed at 2, and whose input differs from the digits CNN's."""
    import keras

    from quantbench.engines.converter import convert
    from quantbench.inputs import models

    models.seed_everything(2)
    inputs = keras.Input((4, 4, 2), batch_size=2, name="patch")
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(inputs))
    path = tmp_path_factory.mktemp("fixed") / "fixed2.tflite"
    path.write_bytes(convert(keras.Model(inputs, outputs), "float32").content)
    return path


@pytest.mark.parametrize("batch,invokes", [(1, 1), (2, 1), (3, 2)])
def test_lite_runner_on_a_fixed_batch_of_two(fixed_batch_tflite, rng, batch, invokes):
    m = quantbench.load(fixed_batch_tflite)
    assert not m.resizable and m.inputs[0].shape == (2, 4, 4, 2)
    x = rng.normal(size=(5, 4, 4, 2)).astype(np.float32)
    run = bench.lite_runner(m, x, batch)
    run(0)
    run(7)  # wraps around the samples
    assert bench.samples_per_call(m, batch) == 2 * invokes


def test_measure_records_rounds_why_they_stopped_and_the_batch_used(tiny_model, tiny_variants, digits):
    from quantbench.inputs.models import from_keras

    lite = {name: quantbench.load(tiny_variants[name]) for name in ("float32", "int8-only")}
    x = [digits.x_test[:40]]
    per_sample = max(bench.sample_bytes(m) for m in lite.values())
    ref_bytes = (8 * 8 * 1 + 10) * 4
    bound = 5 * max(per_sample, ref_bytes)  # room for a batch of 5 only
    result = bench.measure(from_keras(tiny_model), lite, {k: x for k in lite}, x, batch=32, time_budget=2.0,
                           rounds=10, memory_bound=bound)
    assert set(result) == {"keras", "float32", "int8-only"}
    for row in result.values():
        lat, thr = row["latency_ms"], row["throughput"]
        assert lat["stopped"] in bench.STOPS and thr["stopped"] in bench.STOPS
        assert lat["n"] >= 1 and lat["batch"] == 1
        assert thr["batch"] == 5 and thr["batch_asked"] == 32 and thr["n"] >= 1
        assert lat["ci95"][0] <= lat["median"] <= lat["ci95"][1]


def _xnnpack_refuses(content: bytes) -> bytes:
    """The int8 file with one tensor's zero-point out of int8's range: XNNPACK refuses it at the first run,
    LiteRT's built-in kernels run it (as in test_runtime)."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(content))
    sg = model.subgraphs[0]
    next(t for t in sg.tensors if t.name.decode().endswith("flatten_1/Reshape")).quantization.zeroPoint[0] = 200
    return bytes(fu.convert_object_to_bytearray(model))


def test_measure_and_bench_say_when_xnnpack_refused_a_file(tiny_model, tiny_variants, digits, tmp_path):
    from quantbench.inputs.models import from_keras, load_model

    lite = {"int8-only": quantbench.load(tiny_variants["int8-only"]),
            "edited": quantbench.load(_xnnpack_refuses(tiny_variants["int8-only"]))}
    x = [digits.x_test[:8]]
    result = bench.measure(from_keras(tiny_model), lite, {k: x for k in lite}, x, batch=4, time_budget=0.3, rounds=3)
    assert result["int8-only"]["xnnpack_refused"] is None and "xnnpack_refused" not in result["keras"]
    assert "unsupported zero-point value (200)" in result["edited"]["xnnpack_refused"]
    source = load_model(_write(tmp_path, "source.tflite", _xnnpack_refuses(tiny_variants["int8-only"])))
    result = bench.measure(source, lite, {k: x for k in lite}, x, batch=4, time_budget=0.3, rounds=3)
    assert "unsupported zero-point value (200)" in result["keras"]["xnnpack_refused"]  # the reference row too

    paths = [_write(tmp_path, "i8.tflite", tiny_variants["int8-only"]),
             _write(tmp_path, "edited.tflite", _xnnpack_refuses(tiny_variants["int8-only"]))]
    files = api.bench_files(paths, time_budget=0.3, rounds=3, batch=4)
    assert files.files[0]["xnnpack_refused"] is None
    assert "unsupported zero-point value (200)" in files.files[1]["xnnpack_refused"]
    last = render(files).splitlines()[-1]
    assert last.startswith(f"{paths[1]}: timed on LiteRT's built-in kernels, because XNNPACK refused it (")
    assert sum("built-in kernels" in ln for ln in render(files).splitlines()) == 1


def test_measure_times_a_fixed_batch_model(fixed_batch_tflite, rng):
    from quantbench.inputs.models import load_model

    source = load_model(fixed_batch_tflite)
    x = [rng.normal(size=(6, 4, 4, 2)).astype(np.float32)]
    m = quantbench.load(fixed_batch_tflite)
    result = bench.measure(source, {"copy": m}, {"copy": x}, x, batch=3, reference="float32", time_budget=1.0,
                           rounds=5)
    assert result["copy"]["latency_ms"]["batch"] == 2  # one invoke of two samples is the least it can do
    assert result["copy"]["throughput"]["batch"] == 4 and result["float32"]["throughput"]["batch"] == 4


def test_generate_inputs_share_a_quantized_twins_range(tiny_variants):
    f32, i8 = quantbench.load(tiny_variants["float32"]), quantbench.load(tiny_variants["int8-only"])
    a, b = generated_inputs([f32, i8], api.GENERATED, seed=3, fallback=api.FLOAT_RANGE,
                            bound=bench.THROUGHPUT_MEMORY)
    lo, hi = float_range(i8.inputs[0])
    assert a[0].shape == (api.GENERATED, 8, 8, 1) and a[0].dtype == np.float32
    np.testing.assert_array_equal(a[0], b[0])  # same name and shape: the same float inputs, side by side
    assert lo <= a[0].min() and a[0].max() <= hi and a[0].max() - a[0].min() > 0.5 * (hi - lo)
    again = generated_inputs([f32], api.GENERATED, seed=3, fallback=api.FLOAT_RANGE)[0][0]
    assert not np.array_equal(again, a[0])  # alone, float32 has no twin: [0, 1)
    assert 0 <= again.min() and again.max() < 1


def _write(folder, name, content):
    path = folder / name
    path.write_bytes(content)
    return path


def test_bench_files_times_different_models_side_by_side(tiny_variants, fixed_batch_tflite, tmp_path):
    paths = [_write(tmp_path, "f32.tflite", tiny_variants["float32"]),
             _write(tmp_path, "i8.tflite", tiny_variants["int8-only"]), fixed_batch_tflite]
    result = api.bench_files(paths, time_budget=1.0, rounds=5, batch=8)
    assert [f["path"] for f in result.files] == [str(p) for p in paths]
    assert [f["input_shapes"] for f in result.files] == [[[8, 8, 1]], [[8, 8, 1]], [[4, 4, 2]]]
    assert result.files[2]["throughput"]["batch"] == 8 and result.files[2]["latency_ms"]["batch"] == 2
    assert {f["latency_ms"]["n"] for f in result.files} == {result.files[0]["latency_ms"]["n"]}  # same rounds
    assert result.machine["threads"] == 1 and "cpu" in result.machine
    assert result.settings["batch_used"] == 8 and "generated" in result.settings["input"]
    text = render(result)
    assert "i8.tflite" in text and "throughput at batch 8" in text and "LiteRT" in text
    assert json.loads(result.to_json())["files"][1]["bytes"] == len(tiny_variants["int8-only"])


def test_bench_render_says_n_where_no_interval_fits(tiny_variants, tmp_path):
    path = _write(tmp_path, "i8.tflite", tiny_variants["int8-only"])
    result = api.bench_files([path], time_budget=0.0, rounds=1, batch=4)  # one round of each phase
    lat, thr = result.files[0]["latency_ms"], result.files[0]["throughput"]
    assert lat["n"] == 1 and lat["ci95"] is None and thr["n"] == 1 and thr["ci95"] is None
    row = render(result).splitlines()[2]
    assert " (n = 1) " in row and row.count("(n = 1)") == 2 and "–" not in row
    assert "Batch 1: 1 interleaved round (budget); throughput at batch 4: 1 round (budget)" in render(result)


def test_bench_files_with_an_input_file(tiny_variants, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits.x_test[:20])
    path = _write(tmp_path, "i8.tflite", tiny_variants["int8-only"])
    result = api.bench_files([path], tmp_path / "x.npy", time_budget=0.5, rounds=5)
    assert result.settings["input"] == str(tmp_path / "x.npy")


@pytest.mark.parametrize("case,message", [
    ("missing", r"No \.tflite file at .*nope\.tflite\. Expected a path to a TFLite model file\. Fix: "),
    ("not tflite", r".*notes\.txt is not a TFLite flatbuffer .* Fix: pass a \.tflite file"),
    ("twice", r".*f32\.tflite is given twice\. Expected each \.tflite file once\. Fix: drop the repeated path\."),
    ("wrong input", r".*fixed2\.tflite: Input 'patch' has shape \(20, 8, 8, 1\), expected \(N, 4, 4, 2\)"),
    ("folder", r".* is a folder\. Expected \.tflite files\. Fix: pass the files"),
])
def test_bench_command_refuses_a_bad_file_in_one_line(case, message, tiny_variants, fixed_batch_tflite, digits,
                                                      tmp_path, capsys):
    from quantbench.cli import main

    good = _write(tmp_path, "f32.tflite", tiny_variants["float32"])
    args = {"missing": [good, tmp_path / "nope.tflite"],
            "not tflite": [good, _write(tmp_path, "notes.txt", b"hello, not a model")],
            "twice": [good, good],
            "wrong input": [good, fixed_batch_tflite, "--input", tmp_path / "x.npy"],
            "folder": [good, tmp_path]}[case]
    np.save(tmp_path / "x.npy", digits.x_test[:20])
    assert main(["bench", *map(str, args), "--time-budget", "0.2", "--json", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.match("quantbench: error: " + message, err), err
    assert not (tmp_path / "b.json").exists()


def test_bench_command_prints_a_table_and_writes_json(tiny_variants, tmp_path, capsys):
    from quantbench.cli import main

    paths = [_write(tmp_path, f"{n}.tflite", tiny_variants[n]) for n in ("float32", "dynamic")]
    out = tmp_path / "bench.json"
    assert main(["bench", *map(str, paths), "--time-budget", "0.5", "--batch", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ms/call (95% CI)" in printed and "dynamic.tflite" in printed
    assert main(["report", str(out)]) == 0  # the saved file prints the same table again
    assert capsys.readouterr().out == printed
    saved = json.loads(out.read_text())
    assert [f["path"] for f in saved["files"]] == [str(p) for p in paths]
    assert saved["settings"]["batch"] == 4 and saved["machine"]["cores"]
    assert main(["bench", str(paths[0]), "--time-budget", "0.2", "--json", str(out)]) == 2  # no overwrite
    assert capsys.readouterr().err == (f"quantbench: error: --json {out} already exists. Expected a new file path. "
                                       "Fix: choose another --json path, or pass --force to replace it.\n")
    assert main(["bench", str(paths[0]), "--time-budget", "0.2", "--json", str(out), "--force"]) == 0
    assert len(json.loads(out.read_text())["files"]) == 1


@pytest.fixture(scope="session")
def bench_json(tiny_variants, tmp_path_factory):
    """What `quantbench bench --json` wrote for one tiny file, parsed."""
    folder = tmp_path_factory.mktemp("bench")
    path = _write(folder, "i8.tflite", tiny_variants["int8-only"])
    return json.loads(api.bench_files([path], time_budget=0.3, rounds=5, batch=4).to_json())


@pytest.mark.parametrize("change,what", [
    (lambda r: r.update(files=[]), "files is []; expected a list of at least one timed file"),
    (lambda r: r["files"][0].pop("latency_ms"), "files[0].latency_ms is null; expected an object"),
    (lambda r: r["files"][0]["latency_ms"].update(median="fast"),
     'files[0].latency_ms.median is "fast"; expected a finite number'),
    (lambda r: r["files"][0]["throughput"].update(samples_per_s=float("nan")),
     "files[0].throughput.samples_per_s is NaN; expected a finite number"),
    (lambda r: r["files"][0]["latency_ms"].update(ci95=[1e3, 2e3]),
     "files[0].latency_ms.median is {median}, outside its interval [1000.0, 2000.0]; expected low <= value <= high"),
    (lambda r: r["files"][0].update(path=None), "files[0].path is missing or null; expected text"),
    (lambda r: r["machine"].pop("simd"), "machine.simd is null; expected a list"),
    (lambda r: r["settings"].update(batch_used="4"), 'settings.batch_used is "4"; expected a whole number'),
    (lambda r: r.update(machine=[]), "machine is []; expected an object"),
])
def test_report_of_a_damaged_bench_file_is_one_line(change, what, bench_json, tmp_path, capsys):
    from quantbench.cli import main

    raw = json.loads(json.dumps(bench_json))
    change(raw)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(raw))
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    what = what.format(median=bench_json["files"][0]["latency_ms"]["median"])
    assert err == [f"quantbench: error: {path} is not a `quantbench bench` JSON quantbench can read: {what}. Fix: "
                   "restore the file as quantbench wrote it, or time the files again with quantbench bench --json."]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


def test_report_of_a_bench_file_writes_no_report_files(bench_json, tmp_path, capsys):
    from quantbench.cli import main

    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench_json))
    assert main(["report", str(path), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (
        f"quantbench: error: --out {tmp_path / 'r'} was given with {path}, a `quantbench bench` file, which has no "
        "report files, only its table. Expected --out only with a study's results.json. Fix: drop --out.\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]
