import numpy as np
import pytest

import quantbench
from quantbench import bench


def test_latency_times_every_runner_every_round_in_shuffled_order():
    calls = []
    runners = {name: (lambda i, name=name: calls.append((name, i))) for name in "abcd"}
    times = bench.latency(runners, n=20, warmup=2)
    assert all(t.shape == (20,) and np.all(t >= 0) for t in times.values())
    timed = calls[4 * 2:]  # after each runner's warm-up
    rounds = [timed[k:k + 4] for k in range(0, len(timed), 4)]
    assert all(sorted(n for n, _ in r) == list("abcd") and {i for _, i in r} == {k} for k, r in enumerate(rounds))
    orders = {tuple(n for n, _ in r) for r in rounds}
    assert len(orders) > 1  # not one fixed order, where each variant always follows the same neighbour
    calls.clear()
    bench.latency(runners, n=20, warmup=2)
    assert [r for r in calls[8:]] == timed  # seeded: the same order next time


def test_summarize():
    ms = np.arange(1, 101, dtype=float)
    s = bench.summarize(ms)
    assert s["median"] == 50.5 and s["ci95"] == [40.0, 61.0] and s["n"] == 100
    assert s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert list(s["quantiles"]) == [str(q) for q in bench.QUANTILES]
    assert s["quantiles"]["0"] == 1.0 and s["quantiles"]["100"] == 100.0 and s["quantiles"]["50"] == 50.5


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
