"""E-divisive means with a Student's t-test, as Apache Otava (formerly Hunter) finds change points.

Why hand-written (measured in ``chatbench.history.bench``, numbers in docs/history.md): the issue
forbids a library that pins numpy or pulls cloud SDKs into an application's venv.
``apache-otava`` 0.8.0 pins numpy==2.2.0 and brings google-cloud-bigquery, grpcio and slack_sdk (45
distributions); ``signal-processing-algorithms`` 2.1.6 (the package Otava dropped after finding its
implementation wrong, apache/otava#96) installs numpy 1.26 under its pin plus gevent and structlog;
``ruptures`` 1.1.10 (numpy + scipy only, well kept) has no E-divisive and no significance test, so its
change points need a penalty tuned per series instead of a p-value. What is left is small: the
energy statistic Q-hat over one window with numpy, and the split/merge procedure of Fleming et al.,
"Hunter: Using Change Point Detection to Hunt for Performance Regressions" (ICPE 2023).

The procedure, with Otava's defaults (``window`` 50, ``max_pvalue`` 0.001, the first pass at 10x the
p-value; Otava lowered its default after the old one reported outliers, apache/otava#126):

1. split: windows of ``window`` points, advanced by half a window; in each, E-divisive finds the
   split maximising Q-hat, keeps it while a two-sided t-test between the two sides has
   p <= ``first_pass_pvalue``, and recurses into the pieces ("weak" change points);
2. merge: the weakest point (largest p-value, or the smallest change once every p passes) is
   dropped and its neighbours re-tested, until every point has p <= ``max_pvalue`` and a relative
   change above ``min_magnitude``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import ttest_ind_from_stats

WINDOW = 50
MAX_PVALUE = 0.001
MIN_MAGNITUDE = 0.0


@dataclass(frozen=True)
class Split:
    """A change point at ``index`` (the first point of the new level) with its t-test on both sides."""

    index: int
    pvalue: float
    mean_before: float
    mean_after: float
    std_before: float
    std_after: float

    @property
    def change(self) -> float:
        """Relative change of the mean, after vs before (0.10: 10% higher)."""
        return self.mean_after / self.mean_before - 1.0 if self.mean_before else 0.0

    @property
    def magnitude(self) -> float:
        """The larger of the forward and backward relative changes, as Otava ranks them."""
        backward = self.mean_before / self.mean_after - 1.0 if self.mean_after else 0.0
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


def ttest(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float, float, float]:
    """(p, mean before, mean after, std before, std after): Student's two-sided test, population stds."""
    mean_1, mean_2 = float(np.mean(before)), float(np.mean(after))
    std_1 = float(np.std(before)) if len(before) >= 2 else 0.0
    std_2 = float(np.std(after)) if len(after) >= 2 else 0.0
    if len(before) + len(after) <= 2:
        return 1.0, mean_1, mean_2, std_1, std_2
    if std_1 == 0.0 and std_2 == 0.0:  # exact metrics (buffers, rows): any difference is certain
        return (0.0 if mean_1 != mean_2 else 1.0), mean_1, mean_2, std_1, std_2
    _, p = ttest_ind_from_stats(mean_1, std_1, len(before), mean_2, std_2, len(after))
    return float(p) if np.isfinite(p) else 1.0, mean_1, mean_2, std_1, std_2


def _tested(series: np.ndarray, index: int, lo: int, hi: int) -> Split:
    return Split(index, *ttest(series[lo:index], series[index:hi]))


def _bounds(points: list[int], length: int) -> list[tuple[int, int]]:
    edges = [0, *points, length]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _divisive(window: np.ndarray, max_pvalue: float) -> list[int]:
    """E-divisive within one window: split the piece with the largest Q-hat while its t-test passes."""
    points: list[int] = []
    while True:
        best: tuple[float, int, int, int] | None = None
        for lo, hi in _bounds(points, len(window)):
            if hi - lo > 1:
                tau, q = _candidate(window[lo:hi])
                if best is None or q > best[0]:
                    best = (q, lo + tau, lo, hi)
        if best is None:
            return points
        _, index, lo, hi = best
        if _tested(window, index, lo, hi).pvalue > max_pvalue:
            return points
        points = sorted([*points, index])


def _retest(series: np.ndarray, points: list[int]) -> list[Split]:
    bounds = [0, *points, len(series)]
    return [_tested(series, points[i], bounds[i], bounds[i + 2]) for i in range(len(points))]


def change_points(values: np.ndarray | list[float], *, window: int = WINDOW, max_pvalue: float = MAX_PVALUE,
                  min_magnitude: float = MIN_MAGNITUDE) -> list[Split]:
    """The change points of ``values`` (in order), each with its t-test against its neighbours."""
    series = np.asarray(values, dtype=float)
    if window < 2:
        raise ValueError("window must be at least 2")
    first_pass = max_pvalue * 10 if max_pvalue < 0.05 else (max_pvalue * 2 if max_pvalue < 0.5 else max_pvalue)
    weak: set[int] = set()
    start, step = 0, window // 2
    while start < len(series):
        end = min(start + window, len(series))
        found = [start + i for i in _divisive(series[start:end], first_pass)]
        weak.update(found)
        start = max(max(found) if found else 0, start + step)
    splits = _retest(series, sorted(weak))
    while splits:
        weakest = max(range(len(splits)), key=lambda i: splits[i].pvalue)
        if splits[weakest].pvalue < max_pvalue:
            weakest = min(range(len(splits)), key=lambda i: splits[i].magnitude)
            if splits[weakest].magnitude > min_magnitude:
                break
        points = [s.index for i, s in enumerate(splits) if i != weakest]
        splits = _retest(series, points)
    return splits
