"""Descriptive statistics computed from raw latency samples, and growth-class fits for scaling.

Why here and not in pytest-benchmark: pytest-benchmark keeps min/max/mean/stddev/median/IQR but
no tail percentiles, and a sign-off is about tails (p95/p99). Every number below is computed
from the raw samples, which the results keep next to them, so anyone can recompute or re-judge.

Conventions:
- Samples are milliseconds (floats), one per timed execution (one round).
- Percentiles use numpy's default linear interpolation ("type 7"), the same as pandas/R default,
  so numbers can be reproduced elsewhere.
- "Could not compute" is an error, never a silent pass: ``describe`` raises ``ValueError`` on an
  empty or non-finite sample set.
- A result is flagged *unstable* when the coefficient of variation (stddev / mean) is >= 10%,
  pyperf's threshold: such numbers are reported, not hidden, and the flag travels with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from chatbench import convert

UNSTABLE_CV = 0.10
"""Coefficient of variation from which a sample set is called unstable (pyperf's rule)."""

MIN_ROUNDS_FOR_P99 = 100
"""Below this many rounds the p99 is (nearly) the maximum: reported, but flagged as thin."""


@dataclass(frozen=True)
class SampleStats:
    """Summary of one sample set (milliseconds). Immutable; rebuilt from the raw samples on demand."""

    rounds: int
    min: float
    max: float
    mean: float
    stddev: float  # sample standard deviation (ddof=1); 0.0 for a single round
    p50: float
    p95: float
    p99: float
    q1: float
    q3: float
    iqr: float
    cv: float  # stddev / mean

    @property
    def median(self) -> float:
        return self.p50

    @property
    def unstable(self) -> bool:
        """True when the spread is large relative to the mean (CV >= 10%): compare with care."""
        return self.cv >= UNSTABLE_CV

    @property
    def thin_tail(self) -> bool:
        """True when there are too few rounds for p99 to mean more than "the slowest round"."""
        return self.rounds < MIN_ROUNDS_FOR_P99

    def percentile(self, name: str) -> float:
        """A statistic by name (``p50``, ``p95``, ``p99``, ``mean``, ...): what targets refer to."""
        if name not in _STAT_NAMES:
            raise KeyError(f"unknown statistic {name!r}; expected one of {', '.join(sorted(_STAT_NAMES))}")
        return float(getattr(self, name))


convert.register(SampleStats, derived=("unstable",))  # written for readers that do not recompute it
_STAT_NAMES = frozenset(SampleStats.__dataclass_fields__) - {"rounds"}


def describe(samples_ms: Sequence[float] | np.ndarray) -> SampleStats:
    """Compute the summary of raw samples; raises ``ValueError`` when there is nothing sound to summarise."""
    data = np.asarray(samples_ms, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("cannot compute statistics: no samples")
    if not np.all(np.isfinite(data)):
        raise ValueError("cannot compute statistics: samples contain NaN or infinity")
    p50, p95, p99, q1, q3 = (float(v) for v in np.percentile(data, [50, 95, 99, 25, 75]))
    mean = float(data.mean())
    stddev = float(data.std(ddof=1)) if data.size > 1 else 0.0
    return SampleStats(
        rounds=int(data.size),
        min=float(data.min()),
        max=float(data.max()),
        mean=mean,
        stddev=stddev,
        p50=p50,
        p95=p95,
        p99=p99,
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        cv=stddev / mean if mean > 0 else math.inf,
    )


PERCENTILE_CONFIDENCE = 0.99
"""Confidence asked of the interval a percentile is judged with (``percentile_interval``): 99%, so that
the few re-measurements an undecided target gets do not add up to a coin-flip."""


@dataclass(frozen=True)
class PercentileInterval:
    """Two order statistics bracketing a percentile, and the confidence they actually reach.

    ``confidence`` is exact (binomial, below): usually a little above ``asked`` (order statistics are
    discrete), and below it when the rounds are too few for the tail asked about: then the high end
    is the slowest round, which covers only ``1 - q**n`` (at 300 rounds the 99th percentile's
    bound is ~95%, not 99%). Unpacks as ``low, high``.
    """

    low: float
    high: float
    confidence: float  # P(low <= true percentile <= high), whatever the latency distribution
    asked: float
    rounds_needed: int  # the fewest rounds that reach ``asked`` for this percentile

    @property
    def short(self) -> bool:
        """The rounds support less confidence than was asked (the slowest round is the bound)."""
        return self.confidence < self.asked

    def __iter__(self) -> Iterator[float]:
        return iter((self.low, self.high))


def percentile_interval(
    samples_ms: Sequence[float] | np.ndarray, percent: float, confidence: float = PERCENTILE_CONFIDENCE
) -> PercentileInterval:
    """A distribution-free confidence interval of a percentile: two order statistics of the samples.

    The count B of samples below the true ``percent``-th percentile is binomial(n, q = percent/100),
    so the order statistics of ranks l and h bracket it with probability P(l <= B <= h - 1), for any
    (continuous) latency distribution, which is skewed and often bimodal. l and h are that binomial's
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles; when h would pass the slowest
    round it is the slowest round, and the confidence reported is the one that rank reaches.
    """
    data = np.sort(np.asarray(samples_ms, dtype=float))
    if data.size == 0 or not np.all(np.isfinite(data)):
        raise ValueError("cannot compute a percentile interval: no samples, or NaN/infinity among them")
    # lazy, and scipy.special's binomial CDF rather than scipy.stats.binom: every command imports this module, and
    # a process that only records or reads a run would import scipy.stats (about 1.2 s more) for these two lines
    from scipy.special import bdtr

    n, q = int(data.size), percent / 100.0
    tail = (1.0 - confidence) / 2.0
    cdf = bdtr(np.arange(n + 1), n, q)  # cdf[k] = P(B <= k)

    def quantile(share: float) -> int:  # the binomial's: the fewest k with P(B <= k) >= share (binom.ppf)
        return int(np.searchsorted(cdf, share, side="left"))

    low_rank = min(max(quantile(tail), 1), n)  # 1-based ranks
    high_rank = min(max(quantile(1.0 - tail) + 1, 1), n)
    reached = float(cdf[high_rank - 1] - cdf[low_rank - 1])
    return PercentileInterval(float(data[low_rank - 1]), float(data[high_rank - 1]), reached, confidence,
                              rounds_needed(percent, confidence))


def rounds_needed(percent: float, confidence: float = PERCENTILE_CONFIDENCE) -> int:
    """Rounds enough for ``confidence``: with n where q**n <= (1 - confidence) / 2 the slowest round is
    at least a ``(1 + confidence) / 2`` upper bound of the percentile (528 for p99 at 99%, 104 for p95)."""
    return math.ceil(math.log((1.0 - confidence) / 2.0) / math.log(percent / 100.0))


def seconds_to_ms(samples_s: Sequence[float]) -> tuple[float, ...]:
    """pytest-benchmark stores seconds; results store milliseconds."""
    return tuple(float(s) * 1000.0 for s in samples_s)


# --- growth classes (scaling) ---------------------------------------------------------------

GrowthClass = Literal["flat", "logarithmic", "linear", "unknown"]

FLAT_GROWTH = 0.5
"""A fitted increase of less than 50% over the whole x range counts as flat.

Why that loose: single-client latencies on a shared 2-core machine wobble by tens of percent,
while the shapes we must tell apart differ far more over a 20x range: a linear cost over pages 1..20
grows ~20x, a logarithmic one ~4x (log2(20)), a flat (index keyset) one stays within noise.
"""


@dataclass(frozen=True)
class GrowthFit:
    """Which curve best explains y(x): the class, the fitted growth over the range, and the fits' R²."""

    growth_class: GrowthClass
    points: int
    growth: float  # fitted y(x_max) / y(x_min) - 1 of the chosen (or best non-flat) model
    r2_linear: float
    r2_log: float
    slope_linear: float  # y units per x unit
    slope_log: float  # y units per ln(x) unit


def _growth_fit_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """A number not recorded (an older file) or written as null (NaN in strict JSON) reads as NaN, never invented;
    a fit without a class or point count (an older file) reads as ``unknown`` over 0 points."""
    numbers = ("growth", "r2_linear", "r2_log", "slope_linear", "slope_log")
    return {"growth_class": "unknown", "points": 0, **data,
            **{name: math.nan for name in numbers if data.get(name) is None}}


convert.register(GrowthFit, read=_growth_fit_fields)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y = a + b*x; returns (a, b, R²) (R² = 1 when y is constant and fitted exactly)."""
    b, a = np.polyfit(x, y, 1)
    residual = float(np.sum((y - (a + b * x)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return float(a), float(b), r2


def fit_growth(xs: Sequence[float], ys: Sequence[float], noise: Sequence[float] | None = None) -> GrowthFit:
    """Classify how ``ys`` grows with ``xs`` (page depth, data size) as flat, logarithmic or linear.

    Method: fit y = a + b*x and y = a + b*ln(x) by least squares. If the better fit predicts less
    than ``FLAT_GROWTH`` relative increase from the smallest to the largest x, the class is flat;
    otherwise the model with the higher R² names the class. Fewer than three distinct x values
    cannot tell log from linear: the class is then ``unknown`` (reported, never guessed).
    ``noise`` (e.g. each point's IQR) makes a fitted increase smaller than twice the median noise
    count as flat too: on a shared machine a p50 wobbles by more than an index lookup costs.
    """
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("fit_growth: xs and ys must be equal-length sequences")
    if np.any(x <= 0):
        raise ValueError("fit_growth: x values must be positive (a logarithm is fitted)")
    distinct = np.unique(x).size
    if distinct < 3:
        return GrowthFit("unknown", int(x.size), math.nan, math.nan, math.nan, math.nan, math.nan)
    a_lin, b_lin, r2_lin = _fit(x, y)
    a_log, b_log, r2_log = _fit(np.log(x), y)
    lo, hi = float(x.min()), float(x.max())
    if r2_lin >= r2_log:
        start, end = a_lin + b_lin * lo, a_lin + b_lin * hi
    else:
        start, end = a_log + b_log * math.log(lo), a_log + b_log * math.log(hi)
    floor = max(start, float(np.min(y)) * 0.5, 1e-12)
    growth = (end - start) / floor
    within_noise = noise is not None and len(noise) > 0 and (end - start) < 2 * float(np.median(noise))
    if growth < FLAT_GROWTH or within_noise:
        growth_class: GrowthClass = "flat"
    else:
        growth_class = "linear" if r2_lin >= r2_log else "logarithmic"
    return GrowthFit(growth_class, int(x.size), float(growth), r2_lin, r2_log, b_lin, b_log)
