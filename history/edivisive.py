"""E-divisive means with a significance test, as Apache Otava (formerly Hunter) finds change points.

Why hand-written (measured in ``chatbench.history.bench``, numbers in docs/history.md): the issue
forbids a library that pins numpy or pulls cloud SDKs into an application's venv.
``apache-otava`` 0.8.0 pins numpy==2.2.0 and brings google-cloud-bigquery, grpcio and slack_sdk (45
distributions); ``signal-processing-algorithms`` 2.1.6 (the package Otava dropped after finding its
implementation wrong, apache/otava#96) installs numpy 1.26 under its pin plus gevent and structlog;
``ruptures`` 1.1.10 (numpy + scipy only, well kept) has no E-divisive and no significance test, so its
change points need a penalty tuned per series instead of a p-value. What is left is small: the
energy statistic Q-hat over one window with numpy, and the split/merge procedure of Fleming et al.,
"Hunter: Using Change Point Detection to Hunt for Performance Regressions" (ICPE 2023).

The procedure (``window`` 50, the first pass at 10x the p-value, as Otava):

1. split: windows of ``window`` points, advanced by half a window; in each, E-divisive finds the
   split maximising Q-hat, keeps it while a two-sided test between the two sides has
   p <= ``first_pass_pvalue``, and recurses into the pieces ("weak" change points);
2. merge: the weakest point (of those next to a blip, else of all: the largest p-value; once every p
   passes, the smallest change over its floor) is dropped and its neighbours re-tested, until every point has
   p <= ``max_pvalue``, a relative change above its floor and levels of ``min_segment`` runs.

``OTAVA`` is Otava's setting: Student's t on the values, p 0.001, nothing else. It is kept so the
agreement with apache-otava can be measured (``chatbench.history.bench``). ``DEFAULT``, what ``history
detect`` uses, keeps E-divisive's split and its significance test but makes both robust to benchmark
noise, each addition measured by the bench (docs/history.md, "Benchmark"):

- ``test="ranks"``: Mann-Whitney U between the two sides, from its exact distribution, and the change
  as the ratio of their medians. Why: the t-test's p-value assumes normal data, and wall times of
  benchmark runs are heavy-tailed (a busy second makes a run's p99 5-20x the usual, in about a third of
  this machine's runs): one outlier moves a mean more than a real 10% step, so the t-test either reports
  outliers or, at a threshold that hides them, misses steps. The rank test's p-value holds for any
  distribution of exchangeable runs, and an outlier moves one rank. Its smallest p-value needs a few
  runs at the new level (after 30: 3.7e-4 from 3 runs, 4.3e-5 from 4), so a lone outlier is never one.
- ``min_magnitude`` 5%: the medians must move by at least that much.
- ``min_segment`` 5: a level that lasted fewer runs between two change points (or at the start) is a
  blip (a burst of busy runs), not a change; the last level is exempt, it is the current one, growing.
- ``suspect_load`` 1.5: runs measured while the machine's load per CPU was above 1.5x the series'
  median are left out (``chatbench.history.series``, which knows the loads).
- ``noise_factor`` (off by default: measured, it only lost steps): the change must exceed that many
  times the runs' own noise, the median relative half-width of their stored intervals on each side.

Exact metrics (buffers, rows: both sides constant) are certain under either test: any difference has
p = 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

WINDOW = 50
MAX_PVALUE = 0.001
MIN_MAGNITUDE = 0.0
TESTS = ("t", "ranks")


@dataclass(frozen=True)
class Options:
    """One setting of the detector (``chatbench.history.bench`` measures each)."""

    test: str = "t"  # "t": Student's t on the values (Otava); "ranks": Mann-Whitney U
    max_pvalue: float = MAX_PVALUE
    min_magnitude: float = MIN_MAGNITUDE  # relative change below which a change point is dropped
    noise_factor: float = 0.0  # the change must exceed this many times the runs' interval half-width
    suspect_load: float = 0.0  # runs at more than this many times the series' median load are left out (0: off)
    min_segment: int = 0  # a level must last this many runs (the current, last one excepted) or is a blip
    window: int = WINDOW

    def describe(self) -> str:
        parts = ["t-test (Otava)" if self.test == "t" else "ranks", f"p {self.max_pvalue:g}"]
        if self.min_magnitude:
            parts.append(f"min {self.min_magnitude:.0%}")
        if self.noise_factor:
            parts.append(f"> {self.noise_factor:g}x noise")
        if self.min_segment:
            parts.append(f"levels >= {self.min_segment}")
        if self.suspect_load:
            parts.append(f"load > {self.suspect_load:g}x out")
        return ", ".join(parts)


OTAVA = Options()
"""Otava's defaults: window 50, p 0.001, Student's t-test on the values, no minimum change."""
DEFAULT = Options(test="ranks", max_pvalue=0.001, min_magnitude=0.05, min_segment=5, suspect_load=1.5)
"""What ``history detect`` uses: the best setting measured by ``chatbench.history.bench`` (docs/history.md)."""


@dataclass(frozen=True)
class Split:
    """A change point at ``index`` (the first point of the new level) with the test of both sides."""

    index: int
    pvalue: float
    level_before: float  # the mean (t-test) or the median (ranks) of the side before
    level_after: float
    floor: float = 0.0  # the smallest relative change reported here (min_magnitude, or the runs' noise)

    @property
    def change(self) -> float:
        """Relative change of the level, after vs before (0.10: 10% higher)."""
        return self.level_after / self.level_before - 1.0 if self.level_before else 0.0

    @property
    def magnitude(self) -> float:
        """The larger of the forward and backward relative changes, as Otava ranks them."""
        backward = self.level_before / self.level_after - 1.0 if self.level_after else 0.0
        return max(abs(self.change), abs(backward))


def _candidate(x: np.ndarray) -> tuple[int, float]:
    """The split of ``x`` maximising Q-hat over every (tau, kappa): (tau, q-hat); tau in 1..len-1.

    Q(tau, kappa) for X = x[:tau] (n points), Y = x[tau:kappa] (m points):
    2/(m+n) * sum|X-Y| - 2m/((m+n)(n-1)) * sum_{i<k}|X_i-X_k| - 2n/((m+n)(m-1)) * sum_{j<k}|Y_j-Y_k|,
    each sum read in O(1) from the 2-D prefix sums of the distance matrix.
    """
    size = len(x)
    distances = np.abs(x[:, None] - x[None, :])
    prefix = np.zeros((size + 1, size + 1))
    prefix[1:, 1:] = distances.cumsum(axis=0).cumsum(axis=1)
    tau = np.arange(1, size)[:, None]
    kappa = np.arange(2, size + 1)[None, :]
    valid = kappa > tau
    tau_b, kappa_b = np.broadcast_arrays(tau, kappa)
    tau_v, kappa_v = tau_b[valid], kappa_b[valid]
    n = tau_v.astype(float)
    m = (kappa_v - tau_v).astype(float)
    between = prefix[tau_v, kappa_v] - prefix[0, kappa_v] - prefix[tau_v, tau_v] + prefix[0, tau_v]
    within_x = prefix[tau_v, tau_v] / 2.0
    within_y = (prefix[kappa_v, kappa_v] - 2 * prefix[tau_v, kappa_v] + prefix[tau_v, tau_v]) / 2.0
    total = m + n
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (2.0 / total) * between
        q -= np.where(n > 1, 2.0 * m / (total * (n - 1)), 0.0) * within_x
        q -= np.where(m > 1, 2.0 * n / (total * (m - 1)), 0.0) * within_y
    best = int(np.argmax(q))
    return int(tau_v[best]), float(q[best])


Test = Callable[[np.ndarray, np.ndarray], tuple[float, float, float]]
"""(before, after) -> (two-sided p, level before, level after)."""


def _exact(before: np.ndarray, after: np.ndarray) -> float | None:
    """Exact metrics (buffers, rows): both sides constant, so any difference is certain; None otherwise."""
    if len(before) + len(after) <= 2:
        return 1.0
    if np.ptp(before) == 0 and np.ptp(after) == 0:
        return 0.0 if before[0] != after[0] else 1.0
    return None


def ttest(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float]:
    """(p, mean before, mean after): Student's two-sided test on population stds, as Otava computes it."""
    mean_1, mean_2 = float(np.mean(before)), float(np.mean(after))
    certain = _exact(before, after)
    if certain is not None:
        return certain, mean_1, mean_2
    std_1 = float(np.std(before)) if len(before) >= 2 else 0.0
    std_2 = float(np.std(after)) if len(after) >= 2 else 0.0
    # lazy: scipy.stats costs 0.86 s to import (-X importtime), and every command imports this module
    from scipy.stats import ttest_ind_from_stats

    _, p = ttest_ind_from_stats(mean_1, std_1, len(before), mean_2, std_2, len(after))
    return float(p) if np.isfinite(p) else 1.0, mean_1, mean_2


def rank_test(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float]:
    """(p, median before, median after): Mann-Whitney U, two-sided, from its exact distribution.

    Exact even with ties (midranks, the statistic rounded towards the centre; ties shrink its spread, so
    the untied distribution is conservative): scipy's ``mannwhitneyu`` switches to the normal
    approximation on any tie, whose tail for 5 runs after 30 is 70x too heavy (4e-4 where the exact p is
    6e-6), and benchmark values tie often. Hand-written because this is called thousands of times per
    series (every split of every window) and scipy's call costs 0.6 ms."""
    median_1, median_2 = float(np.median(before)), float(np.median(after))
    certain = _exact(before, after)
    if certain is not None:
        return certain, median_1, median_2
    n, m = len(before), len(after)
    if n == 0 or m == 0:
        return 1.0, median_1, median_2
    u = float(np.sum(after[:, None] > before[None, :])) + 0.5 * float(np.sum(after[:, None] == before[None, :]))
    extreme = math.ceil(min(u, n * m - u))
    p = min(1.0, 2.0 * float(_u_cdf(n, m)[extreme]))
    return p, median_1, median_2


@functools.lru_cache(maxsize=4096)
def _u_cdf(n: int, m: int) -> np.ndarray:
    """P(U <= u) for u = 0..n*m under no change: the Gaussian binomial coefficient [n+m, n]_q's
    coefficients (how many orderings of n and m runs have u pairs out of order), over C(n+m, n)."""
    counts = np.zeros(n * m + 1)
    counts[0] = 1.0
    for i in range(1, min(n, m) + 1):  # prod (1 - q^(big+i)) / (1 - q^i)
        big = max(n, m)
        shifted = counts.copy()
        shifted[big + i:] -= counts[: len(counts) - big - i]
        for start in range(i):  # divide by (1 - q^i): running sums with stride i
            shifted[start::i] = np.cumsum(shifted[start::i])
        counts = shifted
    return np.cumsum(counts) / math.comb(n + m, n)


def _bounds(points: list[int], length: int) -> list[tuple[int, int]]:
    edges = [0, *points, length]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


@dataclass(frozen=True)
class _Series:
    """One series as the procedure reads it: its values, each run's noise, the test and the setting."""

    values: np.ndarray
    noise: np.ndarray | None  # relative half-width of each run's interval
    test: Test
    options: Options

    def tested(self, index: int, lo: int, hi: int) -> Split:
        p, before, after = self.test(self.values[lo:index], self.values[index:hi])
        floor = self.options.min_magnitude
        if self.noise is not None and self.options.noise_factor:
            widths = max(float(np.median(self.noise[lo:index])), float(np.median(self.noise[index:hi])))
            floor = max(floor, self.options.noise_factor * widths)
        return Split(index, p, before, after, floor)

    def divisive(self, start: int, end: int, max_pvalue: float) -> list[int]:
        """E-divisive within one window: split the piece with the largest Q-hat while its test passes."""
        points: list[int] = []
        while True:
            best: tuple[float, int, int, int] | None = None
            for lo, hi in _bounds(points, end - start):
                if hi - lo > 1:
                    tau, q = _candidate(self.values[start + lo:start + hi])
                    if best is None or q > best[0]:
                        best = (q, lo + tau, lo, hi)
            if best is None:
                return points
            _, index, lo, hi = best
            if self.tested(start + index, start + lo, start + hi).pvalue > max_pvalue:
                return points
            points = sorted([*points, index])

    def retest(self, points: list[int]) -> list[Split]:
        bounds = [0, *points, len(self.values)]
        return [self.tested(points[i], bounds[i], bounds[i + 2]) for i in range(len(points))]


def _blips(points: list[int], length: int, min_segment: int) -> list[int]:
    """Change points next to a level shorter than ``min_segment`` runs: the first level, or one between
    two change points. The last level is the current one and still growing, so it is never too short."""
    edges = [0, *points, length]
    levels = [edges[i + 1] - edges[i] for i in range(len(edges) - 1)]
    levels[-1] = min_segment  # the current level
    return [i for i in range(len(points)) if min(levels[i], levels[i + 1]) < min_segment]


def change_points(values: np.ndarray | Sequence[float], options: Options = OTAVA, *,
                  noise: np.ndarray | Sequence[float] | None = None) -> list[Split]:
    """The change points of ``values`` (in order), each with its test against its neighbours.

    ``noise``: each run's relative interval half-width (``noise_factor``); leaving out suspect runs is
    the caller's (``chatbench.history.series``), which knows their load."""
    if options.window < 2:
        raise ValueError("window must be at least 2")
    if options.test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}")
    series = np.asarray(values, dtype=float)
    run = _Series(series, None if noise is None else np.asarray(noise, dtype=float),
                  rank_test if options.test == "ranks" else ttest, options)
    max_pvalue = options.max_pvalue
    first_pass = max_pvalue * 10 if max_pvalue < 0.05 else (max_pvalue * 2 if max_pvalue < 0.5 else max_pvalue)
    weak: set[int] = set()
    start, step = 0, options.window // 2
    while start < len(series):
        end = min(start + options.window, len(series))
        found = [start + i for i in run.divisive(start, end, first_pass)]
        weak.update(found)
        start = max(max(found) if found else 0, start + step)
    splits = run.retest(sorted(weak))
    while splits:
        blips = _blips([s.index for s in splits], len(series), options.min_segment)
        weakest = max(blips or range(len(splits)), key=lambda i: splits[i].pvalue)
        if not blips and splits[weakest].pvalue < max_pvalue:
            weakest = min(range(len(splits)), key=lambda i: splits[i].magnitude - splits[i].floor)
            if splits[weakest].magnitude > splits[weakest].floor:
                break
        points = [s.index for i, s in enumerate(splits) if i != weakest]
        splits = run.retest(points)
    return splits
