"""The statistics of a comparison of two runs, on their raw samples (see ``chatbench.reports.compare``
for what they decide): percentile ratios with bootstrap intervals, a Mann-Whitney U test, the noise
both runs measured, and the latency verdict they make together. The statistics of one run (its
percentiles, their confidence intervals, growth fits) are in ``chatbench.benchmarks.stats``.

"Could not compute" (too few samples, non-finite values, a zero baseline, a failing test) raises
``CannotCompute``, which a scenario reports as ``error``: a failure, never "significant".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

from chatbench.benchmarks.results import BenchmarkRun, ScenarioResult
from chatbench.reports.comparison import (
    DEFAULT_THRESHOLDS,
    JUDGED,
    PERCENTILES,
    Basis,
    SignificanceTest,
    StatisticChange,
    Status,
    Thresholds,
    ci_text,
    p_text,
)

BUSY_LOAD_PER_CPU = 0.75
"""A run whose 1-minute load average per CPU reached this was sharing the machine with other work."""


def load_per_cpu(run: BenchmarkRun) -> float | None:
    """The run's peak 1-minute load average per CPU (None: not recorded)."""
    return None if run.machine is None else run.machine.peak_per_cpu


def busy(load: float | None) -> bool:
    """Whether a run at this load per CPU shared the machine with other work."""
    return load is not None and load >= BUSY_LOAD_PER_CPU


class CannotCompute(ValueError):
    """The statistics cannot be computed soundly: the scenario is an ``error``, never a pass."""


def bootstrap_ratios(current: np.ndarray, baseline: np.ndarray, thresholds: Thresholds) -> tuple[StatisticChange, ...]:
    """Ratios of p50/p95/p99 (current / baseline) with percentile-bootstrap confidence intervals.

    Each side is resampled independently with replacement (unpaired runs); the interval is the
    central ``confidence`` share of the resampled ratios. numpy rather than ``scipy.stats.bootstrap``
    so the three percentiles share one set of resamples and memory stays bounded (batches).
    """
    qs = np.array([q for _, q in PERCENTILES])
    point_cur = np.percentile(current, qs)
    point_base = np.percentile(baseline, qs)
    if np.any(point_base <= 0) or np.any(point_cur < 0):
        raise CannotCompute("a baseline percentile is zero or negative: no ratio")
    rng = np.random.default_rng(thresholds.seed)
    ratios = np.empty((thresholds.resamples, qs.size))
    batch = max(1, min(thresholds.resamples, 2_000_000 // max(current.size, baseline.size, 1)))
    for start in range(0, thresholds.resamples, batch):
        size = min(batch, thresholds.resamples - start)
        cur = current[rng.integers(0, current.size, size=(size, current.size))]
        base = baseline[rng.integers(0, baseline.size, size=(size, baseline.size))]
        cur_q = np.percentile(cur, qs, axis=1).T
        base_q = np.percentile(base, qs, axis=1).T
        if np.any(base_q <= 0):
            raise CannotCompute("a resampled baseline percentile is zero: no ratio")
        ratios[start : start + size] = cur_q / base_q
    tail = (1.0 - thresholds.confidence) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail], axis=0)
    changes = []
    for index, (name, _) in enumerate(PERCENTILES):
        values = (point_base[index], point_cur[index], point_cur[index] / point_base[index], low[index], high[index])
        if not all(math.isfinite(float(v)) for v in values):
            raise CannotCompute(f"{name}: the ratio or its interval is not finite")
        then, now, ratio, ci_low, ci_high = (float(v) for v in values)
        changes.append(StatisticChange(name, then, now, ratio, ci_low, ci_high, thresholds.confidence))
    return tuple(changes)


def mann_whitney(current: np.ndarray, baseline: np.ndarray) -> SignificanceTest:
    """Two-sided Mann-Whitney U on the raw samples (asymptotic, with tie correction)."""
    # lazy: scipy.stats costs 0.86 s to import (-X importtime), and every command imports this module
    from scipy.stats import mannwhitneyu

    try:
        result = mannwhitneyu(current, baseline, alternative="two-sided", method="asymptotic")
    except ValueError as exc:
        raise CannotCompute(f"Mann-Whitney U failed: {exc}") from exc
    statistic, p_value = float(result.statistic), float(result.pvalue)
    if not (math.isfinite(statistic) and math.isfinite(p_value)):
        # e.g. every sample on both sides identical: the test has no answer (pyperf would say
        # "significant"; a sign-off must not).
        if np.all(current == current[0]) and np.all(baseline == current[0]):
            return SignificanceTest(
                "Mann-Whitney U",
                statistic if math.isfinite(statistic) else 0.0,
                1.0,
                int(current.size),
                int(baseline.size),
            )
        raise CannotCompute("Mann-Whitney U returned a non-finite p-value")
    return SignificanceTest("Mann-Whitney U", statistic, p_value, int(current.size), int(baseline.size))


def _as_samples(values: Sequence[float] | np.ndarray, side: str, thresholds: Thresholds) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size < thresholds.min_samples:
        raise CannotCompute(f"{side} has {data.size} raw samples; at least {thresholds.min_samples} are needed")
    if not np.all(np.isfinite(data)):
        raise CannotCompute(f"{side} samples contain NaN or infinity")
    return data


@dataclass(frozen=True)
class MeasuredNoise:
    """How much the same fixed work varied in the two runs: what a latency effect must be larger than.

    ``current`` / ``baseline``: the relative spread (10th to 90th percentile over the median) of the
    calibration probe's per-probe medians within each run; ``shift``: how much the probe moved between
    the runs (current / baseline - 1). Measured on the ``basis`` compared: the fixed CPU loop's CPU
    time, or its wall time.
    """

    basis: Basis
    current: float
    baseline: float
    shift: float
    measured: bool = True  # False: no calibration in a run; a busy machine counted as ``busy_min_effect``

    @property
    def total(self) -> float:
        return self.current + self.baseline + abs(self.shift)

    def describe(self) -> str:
        if not self.measured:
            return (f"±{self.total:.0%} assumed (a run without noise probes, measured on a busy machine by its "
                    "load average)" if self.total else "not measured (a run without noise probes)")
        probe = "fixed CPU loop's CPU time" if self.basis == "CPU time" else "fixed CPU loop's wall time"
        return (f"±{self.total:.0%}: the {probe} varied ±{self.current:.0%} in this run and "
                f"±{self.baseline:.0%} in the baseline, and moved {self.shift:+.0%} between them")


def _probe_medians(run: BenchmarkRun, basis: Basis) -> list[float]:
    name = "cpu_loop_cpu_ms" if basis == "CPU time" else "cpu_loop_ms"
    return [float(np.median(getattr(p, name))) for p in run.calibration if getattr(p, name)]


def _spread(values: Sequence[float]) -> float:
    low, median, high = np.percentile(np.asarray(values, dtype=float), [10, 50, 90])
    return float((high - low) / median) if median > 0 else 0.0


def measured_noise(
    current: BenchmarkRun, baseline: BenchmarkRun, basis: Basis, thresholds: Thresholds
) -> MeasuredNoise:
    """The noise of both runs on ``basis`` (from their calibration probes; see ``MeasuredNoise``)."""
    cur, base = _probe_medians(current, basis), _probe_medians(baseline, basis)
    if cur and base:
        shift = float(np.median(cur) / np.median(base) - 1.0) if np.median(base) > 0 else 0.0
        return MeasuredNoise(basis, _spread(cur), _spread(base), shift)

    def assumed(run: BenchmarkRun) -> float:
        return thresholds.busy_min_effect if busy(load_per_cpu(run)) else 0.0

    return MeasuredNoise(basis, 0.0, max(assumed(current), assumed(baseline)), 0.0, measured=False)


def latency_basis(
    current: ScenarioResult, baseline: ScenarioResult
) -> tuple[Basis, tuple[float, ...], tuple[float, ...]]:
    """CPU time per round when both runs measured it (what a busy machine moves least), else wall time."""
    if current.cpu_ms and baseline.cpu_ms:
        return "CPU time", current.cpu_ms, baseline.cpu_ms
    return "wall time", current.samples_ms, baseline.samples_ms


@dataclass(frozen=True)
class LatencyVerdict:
    """The latency part of a scenario's verdict."""

    status: Status
    reason: str
    changes: tuple[StatisticChange, ...]
    test: SignificanceTest | None


def judge_latency(
    current: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    noise: MeasuredNoise | None = None,
    *,
    basis: Basis = "wall time",
) -> LatencyVerdict:
    """Classify two raw sample sets as improved / unchanged / regressed / inconclusive, or ``error``.

    ``noise``: what the runs' calibration says the machine moved by itself; an effect must clear it.
    """
    try:
        cur = _as_samples(current, "current", thresholds)
        base = _as_samples(baseline, "baseline", thresholds)
        changes = bootstrap_ratios(cur, base, thresholds)
        test = mann_whitney(cur, base)
    except CannotCompute as exc:
        return LatencyVerdict("error", f"could not compute: {exc}", (), None)
    by_name = {c.statistic: c for c in changes}
    fast, p50, p95 = by_name[JUDGED], by_name["p50"], by_name["p95"]
    significant = test.p_value < thresholds.alpha
    up, down = 1.0 + thresholds.min_effect, 1.0 / (1.0 + thresholds.min_effect)
    floor = noise.total if noise is not None else 0.0
    evidence = f"p50 {p50.change:+.1%}, Mann-Whitney p={p_text(test.p_value)}"
    what = f"{basis} " if basis == "CPU time" else ""
    if significant and fast.ratio >= up and fast.ci_low > 1.0:
        if fast.ci_low > 1.0 + floor:
            beyond = f"; larger than the noise measured in both runs ({noise.describe()})" if noise and floor else ""
            return LatencyVerdict("regressed", f"{what}{fast.describe()}, {evidence}{beyond}", changes, test)
        assert noise is not None
        return LatencyVerdict(
            "inconclusive",
            f"{what}{fast.describe()}, {evidence}; but not clear of the noise measured in both runs "
            f"({noise.describe()}): rerun both on a quieter machine to decide",
            changes,
            test,
        )
    # Tails decide only when asked (judge_tails): the fast rounds are what identical runs reproduce here.
    if significant and thresholds.judge_tails and p95.ci_low >= up + floor:
        return LatencyVerdict("regressed", f"{what}tail {p95.describe()}, {evidence}", changes, test)
    if significant and fast.ratio <= down and fast.ci_high < 1.0 / (1.0 + floor):
        return LatencyVerdict("improved", f"{what}{fast.describe()}, {evidence}", changes, test)
    if significant and thresholds.judge_tails and p95.ci_high <= down / (1.0 + floor):
        return LatencyVerdict("improved", f"{what}tail {p95.describe()}, {evidence}", changes, test)
    if significant and (p95.ci_low >= up or p95.ci_high <= down):
        why = (
            f"{what}{JUDGED} {fast.change:+.1%} ({ci_text(fast.ci_low, fast.ci_high, fast.confidence)}); "
            f"tail {p95.describe()}: a change in the slowest rounds alone is shown, not judged (on a shared "
            "machine other processes cause it)"
        )
    elif significant:
        why = (
            f"{what}{JUDGED} {fast.change:+.1%}, {evidence}: significant but under the {thresholds.min_effect:.0%} "
            "effect"
        )
    else:
        why = f"{what}{JUDGED} {fast.change:+.1%}, p50 {p50.change:+.1%}, not significant (p={p_text(test.p_value)})"
    return LatencyVerdict("unchanged", why, changes, test)


MAX_HISTOGRAM_SAMPLES = 200_000


def histogram_samples(encoded: str) -> np.ndarray:
    """Samples (ms) rebuilt from a base64 HDR histogram of microseconds, thinned to a bounded size.

    Thinning keeps the distribution (every recorded value keeps its share of the counts), so
    percentiles and rank tests see the same shape with fewer points.
    """
    try:
        histogram = HdrHistogram.decode(encoded)
    except Exception as exc:
        raise CannotCompute(f"HDR histogram does not decode ({exc})") from exc
    values, counts = [], []
    for item in histogram.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000.0)
        counts.append(item.count_at_value_iterated_to)
    total = sum(counts)
    if total == 0:
        raise CannotCompute("HDR histogram is empty")
    scale = min(1.0, MAX_HISTOGRAM_SAMPLES / total)
    kept = np.maximum(np.rint(np.asarray(counts, dtype=float) * scale), 1).astype(int)
    return np.repeat(np.asarray(values, dtype=float), kept)
