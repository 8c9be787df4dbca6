"""Regression comparison of a benchmark run against a baseline run.

What it decides, per scenario (the asv and pyperf lessons, see DESIGN.md):

- Results are only compared when their ``params_version`` (hash of SQL, parameter definition and
  schema fingerprint) is equal; otherwise the benchmark itself changed and the scenario is reported
  as ``changed``, never compared with stale numbers.
- Latency: p50/p95/p99 ratios (current / baseline) with a percentile-bootstrap confidence interval
  from the raw samples, and a two-sided Mann-Whitney U test on the raw samples. A *regression* needs
  both a significant test (p < ``alpha``) and an effect at least ``min_effect`` (10%) on the median
  whose whole confidence interval lies above 1. One noisy run therefore does not cry wolf, and a
  real 20% slowdown (thousands of samples) is caught. p95/p99 changes are shown with their
  intervals but decide only with ``judge_tails``: between identical runs on a shared machine they
  moved by 50% and more. When either run was measured on a busy machine (recorded load average),
  latency is judged from ``busy_min_effect`` (+100%) only and the report says so.
- "Could not compute" (too few samples, non-finite values, a zero baseline, a failing test) is the
  ``error`` class: a failure, never "significant" and never "unchanged".
- Deterministic metrics (buffers touched, rows returned, plan shape) are compared exactly when the
  data is the same (same spec, seed and checksum): ``buffer_ratio`` (10x) more buffers or different rows is a
  regression whatever the timings say; a plan whose shape changed is reported with both plans.
- Environment fingerprints are compared first: differing decisive fields (server version, settings,
  CPU, data spec, ...) become warnings at the top and the conclusion says what cannot be concluded.

Rendering lives elsewhere (``render_markdown`` etc.): this module only computes frozen results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
from chatbench.benchmarks.results import (
    BenchmarkRun,
    EnvironmentFingerprint,
    LoadResult,
    PlanRecord,
    ScenarioResult,
)

Status = Literal["improved", "unchanged", "regressed", "new", "missing", "changed", "error"]
FAILING_STATUSES: frozenset[str] = frozenset({"regressed", "error"})
STATUS_ORDER: tuple[Status, ...] = ("regressed", "error", "changed", "missing", "new", "improved", "unchanged")

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))

# Environment fields whose difference means the data itself differs: exact metrics are then skipped.
_DATA_FIELDS = ("spec", "seed", "data_sizes", "profile", "data checksum")

# Keys of ``ScenarioResult.extra`` that are deterministic for equal data and compared exactly.
EXACT_EXTRA_KEYS: tuple[str, ...] = ("rows_per_round", "rows", "plan_shape")
PLAN_TEXT_KEYS: tuple[str, ...] = ("plan", "plan_text")


@dataclass(frozen=True)
class Thresholds:
    """When a difference counts: effect size, significance level, bootstrap settings."""

    min_effect: float = 0.10  # relative change (10%) below which nothing is called a change
    alpha: float = 0.01  # Mann-Whitney significance level
    confidence: float = 0.95  # bootstrap confidence level
    resamples: int = 1000
    seed: int = 20261124  # the bootstrap is seeded: the same inputs give the same report
    min_samples: int = 10  # fewer raw samples on either side: could not compute
    # A p95 shift alone (median steady) fails only when asked: on a shared machine, bursts of other
    # processes move single-client tails between identical runs by 50% and more (measured here).
    judge_tails: bool = False
    # When either run shared the machine with other work (see ``machine_load``), single-client
    # latencies of the same code moved by up to +62% on the median here (2 cores, other benchmarks
    # running): latency is then judged from this effect only; buffers and rows still at min_effect.
    busy_min_effect: float = 1.0
    # Buffers are exact for one physical database, but two seeds of the same rows differ in page
    # layout and visibility map: a count touched 109 pages on one and 775 on the other here. A lost
    # index or a plan flipped to a scan costs 100x-1000x; 10x separates the two.
    buffer_ratio: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StatisticChange:
    """One percentile of both runs, their ratio and its bootstrap confidence interval."""

    statistic: str  # p50 | p95 | p99
    baseline_ms: float
    current_ms: float
    ratio: float  # current / baseline
    ci_low: float
    ci_high: float

    @property
    def change(self) -> float:
        """Relative change, e.g. +0.23 for 23% slower."""
        return self.ratio - 1.0

    def describe(self) -> str:
        return (
            f"{self.statistic} {self.baseline_ms:.3f} → {self.current_ms:.3f} ms "
            f"({self.change:+.1%}, {_ci_text(self.ci_low, self.ci_high)})"
        )


@dataclass(frozen=True)
class SignificanceTest:
    """A two-sample test on the raw samples."""

    name: str
    statistic: float
    p_value: float
    n_current: int
    n_baseline: int


@dataclass(frozen=True)
class ExactDifference:
    """A deterministic metric that differs between the runs (compared exactly, no statistics)."""

    metric: str
    baseline: Any
    current: Any

    def describe(self) -> str:
        return f"{self.metric} {_short(self.baseline)} → {_short(self.current)}"


@dataclass(frozen=True)
class PlanChange:
    """A plan whose shape changed: both plans, so a reader can see what the planner now does."""

    baseline_shape: str
    current_shape: str
    baseline_plan: str
    current_plan: str


@dataclass(frozen=True)
class ScenarioComparison:
    """The verdict for one scenario, with its evidence."""

    scenario: str
    query: str
    status: Status
    reason: str  # one line
    changes: tuple[StatisticChange, ...] = ()
    test: SignificanceTest | None = None
    exact: tuple[ExactDifference, ...] = ()
    plan_change: PlanChange | None = None

    @property
    def failing(self) -> bool:
        return self.status in FAILING_STATUSES

    def change(self, statistic: str) -> StatisticChange | None:
        return next((c for c in self.changes if c.statistic == statistic), None)

    def line(self) -> str:
        """The one line a failing list shows."""
        return f"{self.scenario}: {self.status}: {self.reason}"


@dataclass(frozen=True)
class EnvironmentDifference:
    """A fingerprint field that differs; ``decisive`` ones make numbers incomparable."""

    field: str
    baseline: Any
    current: Any
    decisive: bool

    def describe(self) -> str:
        return f"{self.field}: {_short(self.baseline)} → {_short(self.current)}"


@dataclass(frozen=True)
class Comparison:
    """A whole comparison: environment first, then every scenario (and the load run, if both have one)."""

    current_run: str
    baseline_run: str
    thresholds: Thresholds
    environment: tuple[EnvironmentDifference, ...]
    scenarios: tuple[ScenarioComparison, ...]
    load: tuple[ScenarioComparison, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    plans: tuple[ScenarioComparison, ...] = ()  # verification plans (shape, buffers) of both runs

    @property
    def all_items(self) -> tuple[ScenarioComparison, ...]:
        return self.scenarios + self.plans + self.load

    @property
    def regressions(self) -> tuple[ScenarioComparison, ...]:
        return tuple(s for s in self.all_items if s.status == "regressed")

    @property
    def errors(self) -> tuple[ScenarioComparison, ...]:
        return tuple(s for s in self.all_items if s.status == "error")

    @property
    def failing(self) -> tuple[ScenarioComparison, ...]:
        return tuple(s for s in self.all_items if s.failing)

    @property
    def passed(self) -> bool:
        return not self.failing

    @property
    def verdict(self) -> str:
        if self.regressions:
            return "REGRESSION"
        if self.errors:
            return "COULD NOT COMPARE"
        return "NO REGRESSION"

    @property
    def data_differs(self) -> bool:
        return any(d.field in _DATA_FIELDS for d in self.environment)

    def counts(self) -> dict[str, int]:
        return {status: sum(1 for s in self.all_items if s.status == status) for status in STATUS_ORDER}

    def conclusion(self) -> str:
        """What this comparison can and cannot conclude, in one or two sentences."""
        decisive = [d.field for d in self.environment if d.decisive]
        if not decisive:
            scope = "Same environment: a difference below is attributable to the code or schema."
        elif self.data_differs:
            scope = (
                f"The environment differs ({', '.join(decisive)}), including the data: latency changes "
                "may come from the environment, and deterministic metrics were not compared."
            )
        else:
            scope = (
                f"The environment differs ({', '.join(decisive)}): latency changes may come from the "
                "environment rather than the code."
            )
        counts = self.counts()
        tally = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        return f"{scope} {tally or 'nothing to compare'}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "current_run": self.current_run,
            "baseline_run": self.baseline_run,
            "thresholds": self.thresholds.to_dict(),
            "conclusion": self.conclusion(),
            "counts": self.counts(),
            "environment": [
                asdict(d) | {"baseline": _jsonable(d.baseline), "current": _jsonable(d.current)}
                for d in self.environment
            ],
            "scenarios": [_scenario_dict(s) for s in self.scenarios],
            "plans": [_scenario_dict(s) for s in self.plans],
            "load": [_scenario_dict(s) for s in self.load],
            "notes": list(self.notes),
        }


# --- statistics on raw samples ----------------------------------------------------------------


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
        changes.append(StatisticChange(name, *(float(v) for v in values)))
    return tuple(changes)


def mann_whitney(current: np.ndarray, baseline: np.ndarray) -> SignificanceTest:
    """Two-sided Mann-Whitney U on the raw samples (asymptotic, with tie correction)."""
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
class LatencyVerdict:
    """The latency part of a scenario's verdict."""

    status: Status
    reason: str
    changes: tuple[StatisticChange, ...]
    test: SignificanceTest | None


def judge_latency(
    current: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray, thresholds: Thresholds = Thresholds()
) -> LatencyVerdict:
    """Classify two raw sample sets as improved / unchanged / regressed, or ``error``."""
    try:
        cur = _as_samples(current, "current", thresholds)
        base = _as_samples(baseline, "baseline", thresholds)
        changes = bootstrap_ratios(cur, base, thresholds)
        test = mann_whitney(cur, base)
    except CannotCompute as exc:
        return LatencyVerdict("error", f"could not compute: {exc}", (), None)
    by_name = {c.statistic: c for c in changes}
    p50, p95 = by_name["p50"], by_name["p95"]
    significant = test.p_value < thresholds.alpha
    up, down = 1.0 + thresholds.min_effect, 1.0 / (1.0 + thresholds.min_effect)
    evidence = f"Mann-Whitney p={_p_text(test.p_value)}"
    if significant and p50.ratio >= up and p50.ci_low > 1.0:
        return LatencyVerdict("regressed", f"{p50.describe()}, {evidence}", changes, test)
    # Tails decide only when asked (judge_tails): the median is what identical runs reproduce here.
    if significant and thresholds.judge_tails and p95.ci_low >= up:
        return LatencyVerdict("regressed", f"tail {p95.describe()}, {evidence}", changes, test)
    if significant and p50.ratio <= down and p50.ci_high < 1.0:
        return LatencyVerdict("improved", f"{p50.describe()}, {evidence}", changes, test)
    if significant and thresholds.judge_tails and p95.ci_high <= down:
        return LatencyVerdict("improved", f"tail {p95.describe()}, {evidence}", changes, test)
    if significant and (p95.ci_low >= up or p95.ci_high <= down):
        why = (
            f"p50 {p50.change:+.1%} ({_ci_text(p50.ci_low, p50.ci_high)}); tail {p95.describe()}: a tail shift "
            "is reported, not judged (other processes cause it on a shared machine; see judge_tails)"
        )
    elif significant:
        why = (
            f"p50 {p50.change:+.1%}: significant (p={_p_text(test.p_value)}) "
            f"but under the {thresholds.min_effect:.0%} effect"
        )
    else:
        why = f"p50 {p50.change:+.1%}, not significant (p={_p_text(test.p_value)})"
    return LatencyVerdict("unchanged", why, changes, test)


# --- deterministic metrics --------------------------------------------------------------------


def exact_metrics(result: ScenarioResult) -> dict[str, Any]:
    """The metrics of a scenario that are deterministic for the same data: compared with ``==``."""
    metrics: dict[str, Any] = {}
    if result.buffers is not None:
        metrics["buffers"] = result.buffers.total
    for key in EXACT_EXTRA_KEYS:
        if key in result.extra and result.extra[key] is not None:
            metrics[key] = result.extra[key]
    return metrics


def _plan_text(result: ScenarioResult) -> str:
    for key in PLAN_TEXT_KEYS:
        value = result.extra.get(key)
        if value:
            return value if isinstance(value, str) else _short(value, limit=4000)
    return str(result.extra.get("plan_shape", ""))


def compare_exact(
    current: ScenarioResult, baseline: ScenarioResult, thresholds: Thresholds
) -> tuple[tuple[ExactDifference, ...], PlanChange | None, str | None, str | None]:
    """Exact differences, a plan change, and (worse, better) one-line reasons they imply."""
    cur, base = exact_metrics(current), exact_metrics(baseline)
    diffs = tuple(ExactDifference(k, base[k], cur[k]) for k in sorted(set(cur) & set(base)) if cur[k] != base[k])
    plan = None
    if "plan_shape" in cur and "plan_shape" in base and cur["plan_shape"] != base["plan_shape"]:
        plan = PlanChange(str(base["plan_shape"]), str(cur["plan_shape"]), _plan_text(baseline), _plan_text(current))
    worse: list[str] = []
    better: list[str] = []
    for diff in diffs:
        if diff.metric == "buffers" and isinstance(diff.current, int) and isinstance(diff.baseline, int):
            if diff.current >= diff.baseline * thresholds.buffer_ratio and diff.current > diff.baseline:
                worse.append(f"buffers {diff.baseline} → {diff.current} per execution (deterministic)")
            elif diff.current * thresholds.buffer_ratio <= diff.baseline:
                better.append(f"buffers {diff.baseline} → {diff.current} per execution (deterministic)")
        elif diff.metric in ("rows", "rows_per_round"):
            worse.append(f"rows returned {diff.baseline} → {diff.current} (same data: a correctness change)")
    return diffs, plan, ("; ".join(worse) or None), ("; ".join(better) or None)


# --- whole runs ---------------------------------------------------------------------------------


VOLATILE_KEYS = frozenset(
    {
        "port",
        "unix_socket_directories",
        "data_directory",
        "config_file",
        "hba_file",
        "ident_file",
        "external_pid_file",
        "listen_addresses",
        "cluster_name",
        "client_pid",
        "server_pid",
    }
)
"""Keys (of server settings, of the pinning record) that name where one throwaway server or process
lives, not how it behaves: never a difference between two runs."""

BUSY_LOAD_PER_CPU = 0.75
"""A run whose 1-minute load average per CPU reached this was sharing the machine with other work."""


def compare_environment(
    current: EnvironmentFingerprint, baseline: EnvironmentFingerprint
) -> tuple[EnvironmentDifference, ...]:
    decisive = set(EnvironmentFingerprint.DECISIVE)
    cur, base = current.to_dict(), baseline.to_dict()
    out = []
    for name in current.differences(baseline):
        before, after = base.get(name), cur.get(name)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            keys = sorted(
                k for k in set(before) | set(after) if k not in VOLATILE_KEYS and before.get(k) != after.get(k)
            )
            if not keys:
                continue
            before, after = {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}
        out.append(EnvironmentDifference(name, before, after, name in decisive))
    return tuple(out)


def data_checksum(current: BenchmarkRun, baseline: BenchmarkRun) -> EnvironmentDifference | None:
    """The seeded data's content checksums (``BenchmarkRun.data_checksum``), when both runs recorded one.

    Same spec and seed should give the same rows; a different checksum (another generator version,
    a stale cache) means the data differs, so cursors, buffers and rows cannot be compared exactly.
    """
    cur, base = current.data_checksum, baseline.data_checksum
    if cur is None or base is None or cur == base:
        return None
    return EnvironmentDifference("data checksum", base, cur, True)


def machine_load(current: BenchmarkRun, baseline: BenchmarkRun) -> EnvironmentDifference | None:
    """A warning when either run shared the machine with other work (its recorded load average)."""

    def peak(run: BenchmarkRun) -> float | None:
        return None if run.machine is None else run.machine.peak_per_cpu

    cur, base = peak(current), peak(baseline)
    if not any(v is not None and v >= BUSY_LOAD_PER_CPU for v in (cur, base)):
        return None
    return EnvironmentDifference(
        "machine load (1-min load average per CPU)",
        "not recorded" if base is None else round(base, 2),
        "not recorded" if cur is None else round(cur, 2),
        True,
    )


def compare_scenario(
    current: ScenarioResult | None,
    baseline: ScenarioResult | None,
    thresholds: Thresholds = Thresholds(),
    *,
    same_data: bool = True,
    latency_thresholds: Thresholds | None = None,
) -> ScenarioComparison:
    """One scenario's verdict (``current`` or ``baseline`` may be absent: new / missing)."""
    if current is None and baseline is None:
        raise ValueError("compare_scenario needs at least one result")
    if current is None:
        assert baseline is not None
        return ScenarioComparison(
            baseline.scenario, baseline.query, "missing", "in the baseline, not in the current run"
        )
    if baseline is None:
        return ScenarioComparison(current.scenario, current.query, "new", "not in the baseline")
    if current.params_version != baseline.params_version:
        return ScenarioComparison(
            current.scenario,
            current.query,
            "changed",
            f"benchmark changed (version {baseline.params_version} → {current.params_version}): not compared",
        )
    latency = judge_latency(current.samples_ms, baseline.samples_ms, latency_thresholds or thresholds)
    diffs: tuple[ExactDifference, ...] = ()
    plan: PlanChange | None = None
    status, reason = latency.status, latency.reason
    if same_data:
        diffs, plan, worse, better = compare_exact(current, baseline, thresholds)
        if worse and status != "error":
            status, reason = "regressed", worse + (f"; {latency.reason}" if latency.changes else "")
        elif better and status == "unchanged":
            status, reason = "improved", f"{better}; {latency.reason}"
        if plan is not None:
            reason += f"; plan shape changed ({plan.baseline_shape} → {plan.current_shape})"
    return ScenarioComparison(
        current.scenario, current.query, status, reason, latency.changes, latency.test, diffs, plan
    )


def compare_runs(current: BenchmarkRun, baseline: BenchmarkRun, thresholds: Thresholds = Thresholds()) -> Comparison:
    """Compare two benchmark runs: environment first, then every scenario, then the load run."""
    environment = compare_environment(current.environment, baseline.environment)
    for extra in (data_checksum(current, baseline), machine_load(current, baseline)):
        if extra is not None:
            environment = (*environment, extra)
    same_data = not any(d.field in _DATA_FIELDS for d in environment)
    notes: list[str] = []
    latency_thresholds = thresholds
    busy = next((d for d in environment if d.field.startswith("machine load")), None)
    if busy is not None and thresholds.busy_min_effect > thresholds.min_effect:
        latency_thresholds = replace(thresholds, min_effect=thresholds.busy_min_effect)
        notes.append(
            f"the machine was busy while measuring ({busy.field}: baseline {busy.baseline}, current {busy.current}): "
            f"latency changes are judged from {thresholds.busy_min_effect:+.0%} only, deterministic metrics "
            f"from {thresholds.min_effect:+.0%} as usual; rerun on a quiet machine for a finer verdict"
        )
    cur_by = {s.scenario: s for s in current.scenarios}
    base_by = {s.scenario: s for s in baseline.scenarios}
    names = list(cur_by) + [n for n in base_by if n not in cur_by]
    scenarios = tuple(
        compare_scenario(
            cur_by.get(n), base_by.get(n), thresholds, same_data=same_data, latency_thresholds=latency_thresholds
        )
        for n in names
    )
    load: tuple[ScenarioComparison, ...] = ()
    if current.load is not None and baseline.load is not None:
        load, load_notes = compare_load(current.load, baseline.load, latency_thresholds)
        notes.extend(load_notes)
    elif current.load is not None or baseline.load is not None:
        notes.append("only one of the runs has a load result: load not compared")
    plans: tuple[ScenarioComparison, ...] = ()
    if same_data:
        plans = compare_plans(current.plans, baseline.plans, thresholds)
    elif current.plans and baseline.plans:
        notes.append("the data differs: verification plans (shape, buffers) were not compared")
    return Comparison(current.run_id, baseline.run_id, thresholds, environment, scenarios, load, tuple(notes), plans)


def compare_plans(
    current: Sequence[PlanRecord], baseline: Sequence[PlanRecord], thresholds: Thresholds
) -> tuple[ScenarioComparison, ...]:
    """Verification plans of both runs (``BenchmarkRun.plans``: scenario, query, mode, buffers, shape), exactly.

    Same data, same scenario: the plan's shape and its buffers are deterministic. A shape change is
    always reported with both plans; it is a regression when the buffers also doubled, and without a
    shape change when they grew by ``buffer_ratio``.
    Only plans that differ are listed (the others are the same plan: nothing to say).
    """

    def key(plan: PlanRecord) -> tuple[str, str, str]:
        return plan.scenario, plan.query, plan.mode

    base_by = {key(p): p for p in baseline}
    items = []
    for plan in current:
        before = base_by.get(key(plan))
        if before is None:
            continue
        scenario, query, mode = key(plan)
        label = f"plan:{scenario}/{mode}"
        shape_now, shape_then = plan.shape, before.shape
        buffers_now, buffers_then = plan.buffers, before.buffers
        change = PlanChange(shape_then, shape_now, shape_then, shape_now) if shape_now != shape_then else None
        exact: tuple[ExactDifference, ...] = ()
        worse = better = False
        if buffers_now != buffers_then:
            exact = (ExactDifference("buffers", buffers_then, buffers_now),)
            ratio = thresholds.buffer_ratio if change is None else min(2.0, thresholds.buffer_ratio)
            worse = buffers_now > buffers_then and buffers_now >= buffers_then * ratio
            better = buffers_now * ratio <= buffers_then
        if change is None and not exact:
            continue
        parts = [f"buffers {buffers_then} → {buffers_now} (deterministic)"] if exact else []
        if change is not None:
            parts.append("plan shape changed")
        status: Status = "regressed" if worse else ("improved" if better else "unchanged")
        items.append(ScenarioComparison(label, query, status, "; ".join(parts), exact=exact, plan_change=change))
    return tuple(items)


def compare_load(
    current: LoadResult, baseline: LoadResult, thresholds: Thresholds
) -> tuple[tuple[ScenarioComparison, ...], tuple[str, ...]]:
    """Load operations compared through their HDR histograms (expanded to samples, CO-corrected).

    Runs with a different client count, mode or rate measure different things: not compared.
    """
    if (current.clients, current.mode, current.rate_per_s) != (baseline.clients, baseline.mode, baseline.rate_per_s):
        return (), (
            f"load runs differ in shape ({baseline.clients} clients {baseline.mode} → "
            f"{current.clients} clients {current.mode}): not compared",
        )
    cur_by = {op.operation: op for op in current.operations}
    base_by = {op.operation: op for op in baseline.operations}
    items: list[ScenarioComparison] = []
    for name in list(cur_by) + [n for n in base_by if n not in cur_by]:
        cur_op, base_op = cur_by.get(name), base_by.get(name)
        label = f"load:{name}"
        if cur_op is None or base_op is None:
            present = cur_op or base_op
            assert present is not None
            items.append(
                ScenarioComparison(
                    label, present.query, "new" if base_op is None else "missing", "operation only in one load run"
                )
            )
            continue
        try:
            cur_samples, base_samples = histogram_samples(cur_op.histogram), histogram_samples(base_op.histogram)
        except CannotCompute as exc:
            items.append(ScenarioComparison(label, cur_op.query, "error", f"could not compute: {exc}"))
            continue
        verdict = judge_latency(cur_samples, base_samples, thresholds)
        status, reason = verdict.status, verdict.reason
        if cur_op.errors > base_op.errors and cur_op.errors > 0:
            status, reason = "regressed", f"errors {base_op.errors} → {cur_op.errors}; {reason}"
        items.append(ScenarioComparison(label, cur_op.query, status, reason, verdict.changes, verdict.test))
    return tuple(items), ()


MAX_HISTOGRAM_SAMPLES = 200_000


def histogram_samples(encoded: str) -> np.ndarray:
    """Samples (ms) rebuilt from a base64 HDR histogram of microseconds, thinned to a bounded size.

    Thinning keeps the distribution (every recorded value keeps its share of the counts), so
    percentiles and rank tests see the same shape with fewer points.
    """
    from hdrh.histogram import HdrHistogram

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


# --- helpers ------------------------------------------------------------------------------------


def _ci_text(low: float, high: float) -> str:
    return f"95% CI {low - 1.0:+.1%}..{high - 1.0:+.1%}"


def _p_text(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(_jsonable(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _scenario_dict(item: ScenarioComparison) -> dict[str, Any]:
    return {
        "scenario": item.scenario,
        "query": item.query,
        "status": item.status,
        "reason": item.reason,
        "changes": [asdict(c) for c in item.changes],
        "test": asdict(item.test) if item.test is not None else None,
        "exact": [
            {"metric": d.metric, "baseline": _jsonable(d.baseline), "current": _jsonable(d.current)} for d in item.exact
        ],
        "plan_change": asdict(item.plan_change) if item.plan_change is not None else None,
    }
