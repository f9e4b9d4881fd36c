import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from quantbench.core import stats


@pytest.mark.parametrize("n", [1, 10, 450])
def test_wilson_at_zero_and_all(n):
    z2 = 1.959963984540054 ** 2
    lo, hi = stats.wilson(0, n)
    assert lo == 0.0 and hi == pytest.approx(z2 / (n + z2), rel=1e-12)
    lo, hi = stats.wilson(n, n)
    assert hi == 1.0 and lo == pytest.approx(n / (n + z2), rel=1e-12)


@pytest.mark.parametrize("k,n", [(81, 263), (438, 450), (1, 2), (5, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert stats.wilson(k, n) == pytest.approx([ci.low, ci.high], abs=1e-12)
    assert stats.wilson(81, 263) == pytest.approx([0.255289, 0.366210], abs=1e-6)  # published example


def test_wilson_of_nothing_is_everything():
    assert stats.wilson(0, 0) == [0.0, 1.0]


def test_mcnemar_without_discordant_pairs_is_one():
    right = np.array([1, 1, 0, 1, 0], bool)
    assert stats.mcnemar_exact(right, right) == 1.0


@pytest.mark.parametrize("only_a,only_b,p", [
    (10, 0, 2 * 0.5 ** 10),            # every discordant pair one way
    (1, 1, 1.0),
    (3, 12, 2 * binom.cdf(3, 15, 0.5)),  # 0.03515625
])
def test_mcnemar_is_the_two_sided_binomial_tail(only_a, only_b, p):
    both = 40  # concordant pairs do not change p
    a = np.r_[np.ones(only_a), np.zeros(only_b), np.ones(both), np.zeros(both)].astype(bool)
    b = np.r_[np.zeros(only_a), np.ones(only_b), np.ones(both), np.zeros(both)].astype(bool)
    assert stats.mcnemar_exact(a, b) == pytest.approx(p, rel=1e-12)
    assert stats.mcnemar_exact(b, a) == pytest.approx(p, rel=1e-12)
    assert stats.mcnemar_exact(a, b) == pytest.approx(binomtest(only_a, only_a + only_b).pvalue, rel=1e-9)


def test_mcnemar_refuses_unpaired_outcomes():
    with pytest.raises(ValueError, match="align"):
        stats.mcnemar_exact([1, 0], [1, 0, 1])


def test_median_ci_ranks_match_the_tables():
    assert stats.median_ci_ranks(100) == (40, 61)  # the textbook 95 % ranks for n = 100
    assert stats.median_ci_ranks(6) == (1, 6)
    assert stats.median_ci_ranks(5) == (1, 5)  # 95 % is out of reach below n = 6: the whole range


@pytest.mark.parametrize("n", [6, 30, 100, 450, 1001])
def test_median_ci_covers_at_least_95_percent_and_is_tightest(n):
    j, k = stats.median_ci_ranks(n)
    assert k == n + 1 - j
    assert 1 - 2 * binom.cdf(j - 1, n, 0.5) >= 0.95
    assert 1 - 2 * binom.cdf(j, n, 0.5) < 0.95  # one rank further in would fall short


def test_has_median_ci_from_six_samples_at_95_percent():
    assert [n for n in range(0, 12) if stats.has_median_ci(n)] == list(range(6, 12))
    assert stats.has_median_ci(5, confidence=0.9) and not stats.has_median_ci(4, confidence=0.9)  # 1 - 2/32 = 0.9375


def test_median_ci_takes_the_order_statistics():
    x = np.random.default_rng(0).permutation(np.arange(1, 101, dtype=float))
    assert stats.median_ci(x) == [40.0, 61.0]


def test_sqnr_known_values():
    ref = np.ones(1000)
    assert stats.sqnr_db(ref, ref) == math.inf
    assert stats.sqnr_db(ref, ref * 1.1) == pytest.approx(20.0)  # noise 0.1 → power ratio 100
    assert stats.sqnr_db(ref, np.zeros(1000)) == pytest.approx(0.0)


def test_kl_known_values():
    p = np.array([[0.5, 0.5], [0.2, 0.8]])
    assert stats.mean_kl(p, p) == pytest.approx(0.0, abs=1e-12)
    q = np.array([[0.9, 0.1], [0.2, 0.8]])
    expected = (0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)) / 2
    assert stats.mean_kl(p, q) == pytest.approx(expected, rel=1e-6)
    # a zero probability where the reference has mass stays finite: clipped at KL_EPS
    assert math.isfinite(stats.mean_kl([[0.5, 0.5]], [[1.0, 0.0]]))


def test_is_distribution():
    assert stats.is_distribution([[0.1, 0.9], [1.0, 0.0]])
    assert not stats.is_distribution([[0.1, 0.8]])           # does not sum to 1
    assert not stats.is_distribution([[-0.5, 1.5]])          # negative
    assert not stats.is_distribution(np.zeros((0, 3)))       # nothing to judge


def test_paired_drop_ci():
    same = np.array([True, False, True, True])
    assert stats.paired_drop_ci(same, same) == [0.0, 0.0]
    ref = np.ones(100, bool)
    var = ref.copy()
    var[:4] = False                     # 4 lost, none gained: drop 4 pp
    lo, hi = stats.paired_drop_ci(ref, var)
    assert lo < 4 < hi and lo == pytest.approx(4 - 1.959964 * np.sqrt((0.04 - 0.0016) / 100) * 100, abs=1e-4)


def test_series_interval_is_the_plain_one_on_a_steady_series():
    x = np.random.default_rng(0).normal(100, 1, 400)
    assert stats.median_ci_series(x) == pytest.approx(stats.median_ci(x), abs=0.3)
    lo, hi = stats.median_ci_series(x)
    assert lo <= stats.median_ci(x)[0] and hi >= stats.median_ci(x)[1]  # never narrower


def test_series_interval_widens_when_the_level_drifts_during_the_run():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(100, 1, 100), rng.normal(130, 1, 100), rng.normal(100, 1, 100),
                        rng.normal(130, 1, 100)])  # the machine slows down twice, for a quarter of the run each
    plain = stats.median_ci(x)
    ordered = np.sort(x)
    assert plain == [ordered[179], ordered[220]]  # ranks 180 and 221 of 400
    assert plain == pytest.approx([101.366463, 128.719606], abs=1e-6)
    # ten blocks of 40 rounds: four at each speed and two that straddle a change; the 95 % ranks of 10 medians
    # are 2 and 9, the second-lowest and second-highest, so the interval spans both speeds
    blocks = sorted(np.median(b) for b in np.split(x, 10))
    assert stats.median_ci_series(x) == [blocks[1], blocks[8]] == pytest.approx([99.744877, 129.987276], abs=1e-6)


def test_series_interval_of_few_samples_is_the_plain_one():
    assert stats.median_ci_series([3.0, 1.0, 2.0]) == stats.median_ci([3.0, 1.0, 2.0]) == [1.0, 3.0]
    x = list(range(12))
    # plain: ranks 3 and 10 of 12, values 2 and 9; 10 blocks ([0, 1], [2, 3], [4], ... [11]) have medians
    # 0.5, 2.5, 4, 5, ..., 11, whose ranks 2 and 9 are 2.5 and 10: the hull is [2, 10]
    assert stats.median_ci(x) == [2.0, 9.0] and stats.median_ci_series(x) == [2.0, 10.0]


# ---- edges the mutation run found untested (issue 25; BENCHMARKS.md, "Mutation testing") ----------------

def test_paired_outcomes_may_be_given_as_floats():
    """Right/wrong as 1.0/0.0 (a mean of them is an accuracy): read as truth values, not bit patterns."""
    ref, var = np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0, 1.0])
    assert stats.paired_drop_ci(ref, var) == stats.paired_drop_ci(ref.astype(bool), var.astype(bool))
    assert stats.mcnemar_exact(ref, var) == stats.mcnemar_exact(ref.astype(bool), var.astype(bool)) == 1.0
    assert stats.mcnemar_exact(np.ones(10), np.zeros(10)) == pytest.approx(2 * 0.5 ** 10)


def test_median_of_one_sample_and_of_none():
    assert stats.median_ci_ranks(1) == (1, 1) and stats.median_ci([3.0]) == [3.0, 3.0]
    with pytest.raises(ValueError, match=r"^The median of an empty sample has no interval\.$"):
        stats.median_ci_ranks(0)


def test_has_median_ci_at_the_edges_of_confidence():
    assert stats.has_median_ci(1, confidence=0.0) and not stats.has_median_ci(0, confidence=0.0)
    assert stats.has_median_ci(6, confidence=1 - 2 / 64)  # exactly reached: 1 - 2 / 2**6
    assert not stats.has_median_ci(6, confidence=1 - 2 / 64 + 1e-12)


def test_series_interval_at_another_confidence():
    x = np.random.default_rng(1).permutation(np.arange(1, 101, dtype=float))
    # 50 %: ranks 47 and 54 of 100 (plain), and of the 10 block medians the ranks 4 and 7 (binomial table)
    assert stats.median_ci_ranks(100, 0.5) == (47, 54) and stats.median_ci_ranks(10, 0.5) == (4, 7)
    blocks = sorted(np.median(b) for b in np.split(x, 10))
    expected = [min(47.0, blocks[3]), max(54.0, blocks[6])]
    assert stats.median_ci_series(x, confidence=0.5) == expected
    assert stats.median_ci_series(x, confidence=0.5) != stats.median_ci_series(x)


def test_sqnr_of_scaled_and_integer_signals():
    ref = np.full(1000, 2.0)
    assert stats.sqnr_db(ref, ref * 1.1) == pytest.approx(20.0)  # power, not the count of samples, is the signal
    assert stats.sqnr_db([1.0], [0.5]) == pytest.approx(10 * math.log10(4))
    assert stats.sqnr_db(np.zeros(4), np.ones(4)) == -math.inf  # no signal, some noise
    # int8 outputs: squares and differences in int8 would wrap around
    a, b = np.array([100, -100], np.int8), np.array([-100, 100], np.int8)
    assert stats.sqnr_db(a, b) == pytest.approx(10 * math.log10(20000 / 80000))


def test_is_distribution_at_its_tolerance():
    assert stats.is_distribution([[-0.001, 1.001]])           # exactly -atol: still a probability, rounded
    assert not stats.is_distribution([[-0.0011, 1.0011]])
    assert stats.is_distribution([[0.5, 0.55]], atol=0.1)     # the sum's tolerance is atol too
    assert not stats.is_distribution([[0.5, 0.55]])


def test_kl_renormalises_rows_and_computes_in_float64():
    p, q = np.array([[1.0, 1.0]]), np.array([[1.0, 3.0]])     # rows that do not sum to 1
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert stats.mean_kl(p, q) == pytest.approx(expected, rel=1e-12)
    rng = np.random.default_rng(0)
    p32 = rng.dirichlet(np.ones(10), 50).astype(np.float32)
    q32 = rng.dirichlet(np.ones(10), 50).astype(np.float32)
    assert stats.mean_kl(p32, q32) == pytest.approx(stats.mean_kl(p32.astype(np.float64), q32.astype(np.float64)),
                                                    rel=1e-13)
