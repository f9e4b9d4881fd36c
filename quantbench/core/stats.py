"""The statistics behind the table: intervals, a paired test and fidelity measures. Pure numpy/scipy."""
from __future__ import annotations

import math

import numpy as np

KL_EPS = 1e-7            # probabilities are clipped to this before the log: int8 softmax outputs hit 0


def _st():
    """scipy.stats, imported at first use: a command refused on its arguments does not wait the 0.5 s it takes."""
    from scipy import stats

    return stats


def wilson(k: int, n: int, confidence: float = 0.95) -> list[float]:
    """Wilson score interval [lo, hi] for k successes out of n; [0, 1] when n is 0.

    Unlike the normal (Wald) interval it stays inside [0, 1] and is not degenerate at 0/n or n/n.
    """
    if n == 0:
        return [0.0, 1.0]
    z = float(_st().norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0/n and n/n the closed form gives exactly 0 and 1 but for rounding
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return [lo, hi]


def mcnemar_exact(a_correct, b_correct) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong outcomes of models A and B.

    Only discordant pairs count (A right and B wrong, or the reverse); under "no difference" each
    is a fair coin, so p is the two-sided binomial tail. No discordant pairs gives p = 1.
    """
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a.shape != b.shape:
        raise ValueError(f"Paired outcomes must align; got shapes {a.shape} and {b.shape}.")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * _st().binom.cdf(min(only_a, only_b), n, 0.5)))


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """1-based ranks (j, k) of the order statistics bounding the median with at least `confidence`.

    Distribution-free: the number of samples below the true median is Binomial(n, 1/2), so
    P(x_(j) <= median <= x_(k)) = P(j <= B <= k - 1); j is the largest rank whose lower tail
    P(B <= j - 1) stays within (1 - confidence) / 2, and k = n + 1 - j by symmetry. Below n = 6 no
    pair reaches 95 %, and the whole range (1, n) is returned.
    """
    if n < 1:
        raise ValueError("The median of an empty sample has no interval.")
    j = int(_st().binom.ppf((1 - confidence) / 2, n, 0.5))  # smallest j with P(B <= j) >= alpha/2
    j = max(j, 1)
    return j, n + 1 - j


def has_median_ci(n: int, confidence: float = 0.95) -> bool:
    """Whether n samples can bound their median with `confidence` at all: the widest pair, the smallest and
    the largest, covers it with probability 1 - 2 / 2**n (at 95 %: 6 samples or more)."""
    return n >= 1 and 1 - 2 * 0.5 ** n >= confidence


def median_ci(samples, confidence: float = 0.95) -> list[float]:
    """Distribution-free interval [lo, hi] for the median, from order statistics (see median_ci_ranks)."""
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    j, k = median_ci_ranks(len(x), confidence)
    return [float(x[j - 1]), float(x[k - 1])]


BLOCKS = 10  # a timing's rounds are cut into this many consecutive blocks (see median_ci_series)


def median_ci_series(series, blocks: int = BLOCKS, confidence: float = 0.95) -> list[float]:
    """Interval for the median of a time series whose level may drift while it is measured (timing rounds).

    Order statistics assume independent samples; on a shared machine the speed moves over seconds, so
    neighbouring rounds are alike and the plain interval is too narrow for any other run to land in. Here
    the series is cut into `blocks` consecutive blocks, and the interval is the order-statistics interval of
    the blocks' medians (batch medians: blocks far apart are nearly independent), widened to contain the
    plain interval of all samples. On a steady machine it stays near the plain one (somewhat wider: 10
    block medians say less than every round); a drifting one widens it a lot. Fewer
    samples than blocks: the plain interval.
    """
    x = np.asarray(series, dtype=float).ravel()
    lo, hi = median_ci(x, confidence)
    if len(x) < blocks:
        return [lo, hi]
    b_lo, b_hi = median_ci([np.median(b) for b in np.array_split(x, blocks)], confidence)
    return [min(lo, b_lo), max(hi, b_hi)]


def sqnr_db(reference, output) -> float:
    """Signal-to-quantization-noise ratio of `output` against `reference`, in dB; inf when equal."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    noise = ref - np.asarray(output, dtype=np.float64).ravel()
    noise_power = float(np.sum(noise * noise))
    if noise_power == 0.0:
        return math.inf
    signal_power = float(np.sum(ref * ref))
    return -math.inf if signal_power == 0.0 else 10 * math.log10(signal_power / noise_power)


def is_distribution(outputs, atol: float = 1e-3) -> bool:
    """True when every row is non-negative and sums to 1 (within atol): class probabilities."""
    p = np.asarray(outputs, dtype=np.float64)
    if p.size == 0:
        return False
    p = p.reshape(len(p), -1)
    return bool(np.all(p >= -atol) and np.allclose(p.sum(axis=1), 1.0, atol=atol))


def mean_kl(reference, output, eps: float = KL_EPS) -> float:
    """Mean over samples of KL(reference || output) in nats, rows clipped to eps and renormalised."""
    def norm(a):
        a = np.clip(np.asarray(a, dtype=np.float64).reshape(len(a), -1), eps, None)
        return a / a.sum(axis=1, keepdims=True)
    p, q = norm(reference), norm(output)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def paired_drop_ci(ref_correct, var_correct, z: float = 1.959964) -> list[float]:
    """95 % interval of the accuracy drop (reference minus variant, in points) on the same samples.

    Paired: only the discordant samples carry information. Wald interval on the difference of paired
    proportions, [0, 0] when the two agree on every sample.
    """
    a, b = np.asarray(ref_correct, bool), np.asarray(var_correct, bool)
    n = len(a)
    lost, gained = int(np.sum(a & ~b)), int(np.sum(~a & b))
    d = (lost - gained) / n
    se = math.sqrt(max((lost + gained) / n - d * d, 0.0) / n)
    return [round((d - z * se) * 100, 6), round((d + z * se) * 100, 6)]
