"""Regression comparison of a benchmark run against a baseline run.

What it decides, per scenario (the asv and pyperf lessons, see docs/design.md):

- Results are only compared when their ``params_version`` (hash of SQL, parameter definition and
  schema fingerprint) is equal; otherwise the benchmark itself changed and the scenario is reported
  as ``changed``, never compared with stale numbers.
- Latency: p10/p50/p95/p99 ratios (current / baseline) with a percentile-bootstrap confidence
  interval from the raw samples, and a two-sided Mann-Whitney U test on the raw samples. When both
  runs recorded the CPU time of every round (client + backend, ``chatbench.benchmarks.noise``), that
  is what is compared: a busy machine moves it far less than wall time, while a query that got
  slower costs more CPU. The judged percentile is ``JUDGED`` (p10, the undisturbed rounds; see there
  why). A *regression* needs a significant test (p < ``alpha``), an effect of at least
  ``min_effect`` (10%), and the whole confidence interval of that effect above the **noise measured
  in both runs** (``MeasuredNoise``: how much the interleaved calibration probe, the same fixed work
  each time, varied within each run and moved between them). An effect beyond ``min_effect`` that is
  not clear of the noise is ``inconclusive``: neither a regression nor a pass. The OFFSET contrast
  scenarios (query tagged ``contrast``) show their latency change but are not judged on it: they
  exist to show OFFSET's growth with depth, and between identical runs their CPU time moved up to 2x
  (their prepared statement's plan choice and their memory traffic vary run to run); their buffers
  and rows are still compared exactly.
  Runs without calibration (older files) count a busy machine (recorded load average) as
  ``busy_min_effect`` (+100%) of noise. p95/p99 changes are shown with their intervals but decide
  only with ``judge_tails``: between identical runs on a shared machine they moved by 50% and more.
- "Could not compute" (too few samples, non-finite values, a zero baseline, a failing test) is the
  ``error`` class: a failure, never "significant" and never "unchanged".
- Deterministic metrics (buffers touched, rows returned, plan shape) are compared exactly when the
  data is the same (same spec, seed and checksum): ``buffer_ratio`` (10x) more buffers or different rows is a
  regression whatever the timings say; a plan whose shape changed is reported with both plans.
- Environment fingerprints are compared first: differing decisive fields (server version, settings,
  CPU, data spec, ...) become warnings at the top and the conclusion says what cannot be concluded.
  Runs of different data sizes are refused before anything is compared (``check_comparable``) unless
  asked for.

This module matches the runs (environment, scenarios, plans, load operations) and decides; the
result model is ``chatbench.reports.comparison``, the statistics ``chatbench.reports.compare_stats``
(their public names are importable from here too). Rendering lives elsewhere (``render_markdown``
etc.): this module only computes frozen results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from chatbench.benchmarks.results import (
    BenchmarkRun,
    EnvironmentFingerprint,
    LoadResult,
    PlanRecord,
    ScenarioResult,
)
from chatbench.convert import to_plain
from chatbench.errors import ChatbenchError
from chatbench.reports.compare_stats import (
    BUSY_LOAD_PER_CPU,
    CannotCompute,
    LatencyVerdict,
    MeasuredNoise,
    bootstrap_ratios,
    busy,
    histogram_samples,
    judge_latency,
    latency_basis,
    load_per_cpu,
    mann_whitney,
    measured_noise,
)
from chatbench.reports.comparison import (
    DATA_FIELDS,
    DEFAULT_THRESHOLDS,
    FAILING_STATUSES,
    JUDGED,
    PERCENTILES,
    STATUS_ORDER,
    Basis,
    Comparison,
    EnvironmentDifference,
    ExactDifference,
    PlanChange,
    ScenarioComparison,
    SignificanceTest,
    StatisticChange,
    Status,
    Thresholds,
    short,
)
from chatbench.schema.queries import QUERIES_BY_NAME

__all__ = [
    "BUSY_LOAD_PER_CPU", "DEFAULT_THRESHOLDS", "EXACT_EXTRA_KEYS", "FAILING_STATUSES", "JUDGED", "PERCENTILES",
    "PLAN_TEXT_KEYS", "STATUS_ORDER", "VOLATILE_KEYS", "Basis", "CannotCompute", "Comparison",
    "EnvironmentDifference", "ExactDifference", "LatencyVerdict", "MeasuredNoise", "PlanChange", "ScenarioComparison",
    "SignificanceTest", "StatisticChange", "Status", "Thresholds", "bootstrap_ratios", "check_comparable",
    "compare_environment", "compare_exact", "compare_load", "compare_plans", "compare_runs", "compare_scenario",
    "data_checksum", "exact_metrics", "histogram_samples", "is_contrast", "judge_latency", "latency_basis",
    "machine_load", "mann_whitney", "measured_noise",
]


# Keys of ``ScenarioResult.extra`` that are deterministic for equal data and compared exactly.
EXACT_EXTRA_KEYS: tuple[str, ...] = ("rows_per_round", "rows", "plan_shape")
PLAN_TEXT_KEYS: tuple[str, ...] = ("plan", "plan_text")


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
            return value if isinstance(value, str) else short(value, limit=4000)
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

def compare_environment(
    current: EnvironmentFingerprint, baseline: EnvironmentFingerprint
) -> tuple[EnvironmentDifference, ...]:
    decisive = set(EnvironmentFingerprint.DECISIVE)
    cur, base = to_plain(current), to_plain(baseline)
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


MACHINE_LOAD_FIELD = "machine load (1-min load average per CPU)"


def machine_load(current: BenchmarkRun, baseline: BenchmarkRun) -> EnvironmentDifference | None:
    """A warning when either run shared the machine with other work (its recorded load average)."""
    cur, base = load_per_cpu(current), load_per_cpu(baseline)
    if not (busy(cur) or busy(base)):
        return None
    return EnvironmentDifference(
        MACHINE_LOAD_FIELD,
        "not recorded" if base is None else round(base, 2),
        "not recorded" if cur is None else round(cur, 2),
        True,
    )


def _within_load(latency: LatencyVerdict, base_load: float, cur_load: float) -> LatencyVerdict:
    """A wall-time change no larger than the load's own factor (each run's load per CPU, at least 1) is undecided."""
    change = next((c for c in latency.changes if c.statistic == JUDGED), None)
    factor = max(cur_load, 1.0) / max(base_load, 1.0)
    if change is None:
        return latency
    regressed = latency.status == "regressed"
    within = change.ci_low <= factor if regressed else change.ci_high >= factor
    if (regressed and factor <= 1.0) or (not regressed and factor >= 1.0) or not within:
        return latency
    return replace(latency, status="inconclusive", reason=(
        f"{latency.reason}; but the machine was {factor:.2f}x as loaded per CPU ({base_load:.2f} → {cur_load:.2f}) "
        "and only wall time was measured: the load alone can move it that much; rerun both on a quieter machine, or "
        "on the local backend (CPU time), to decide"))


def round_trip_resolution(current: BenchmarkRun, baseline: BenchmarkRun) -> float:
    """The spread (10th to 90th percentile, ms) of a trivial round trip (``SELECT 1``) over both runs'
    calibration probes: one round trip lands on the backend's core or another (about 11 against 70 µs
    here) and waits for a CPU on a busy machine, so a wall-time shift smaller than this is no evidence."""
    trips = [t for run in (current, baseline) for p in run.calibration for t in p.round_trip_ms]
    if len(trips) < 10:
        return 0.0
    low, high = np.percentile(np.asarray(trips, dtype=float), [10, 90])
    return float(high - low)


def _within_resolution(latency: LatencyVerdict, resolution_ms: float) -> LatencyVerdict:
    change = next((c for c in latency.changes if c.statistic == JUDGED), None)
    if change is None or resolution_ms <= 0 or abs(change.current_ms - change.baseline_ms) > resolution_ms:
        return latency
    return replace(latency, status="inconclusive", reason=(
        f"{latency.reason}; but the shift ({change.current_ms - change.baseline_ms:+.3f} ms) is within the spread "
        f"of a trivial round trip in these runs ({resolution_ms:.3f} ms, wall time only): rerun on the local "
        "backend (CPU time) or a quieter machine to decide"))


def compare_scenario(
    current: ScenarioResult | None,
    baseline: ScenarioResult | None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    same_data: bool = True,
    noise: Callable[[Basis], MeasuredNoise] | None = None,
    unlike_load: tuple[float, float] | None = None,
    resolution_ms: float = 0.0,
) -> ScenarioComparison:
    """One scenario's verdict (``current`` or ``baseline`` may be absent: new / missing).

    ``noise`` gives the noise both runs measured on a basis (``measured_noise``); None: no noise floor.
    ``unlike_load``: the two runs' machine load per CPU (baseline, current) when either was busy. A machine
    k times as loaded can stretch wall time k times by itself, so a latency change measured in wall time
    alone (no CPU time: a container or DSN server) must clear that factor too, else it is undecided, never a
    FAIL on noise; plans, buffers and rows still decide exactly. ``resolution_ms``: the smallest wall-time
    shift the runs can tell apart (the spread of a trivial round trip in both; see ``round_trip_resolution``).
    """
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
    basis, cur_samples, base_samples = latency_basis(current, baseline)
    latency = judge_latency(
        cur_samples, base_samples, thresholds, noise(basis) if noise is not None else None, basis=basis
    )
    if unlike_load is not None and basis == "wall time" and latency.status in ("regressed", "improved"):
        latency = _within_load(latency, *unlike_load)
    if basis == "wall time" and latency.status in ("regressed", "improved"):
        latency = _within_resolution(latency, resolution_ms)
    if is_contrast(current) and latency.status in ("regressed", "improved", "inconclusive"):
        latency = replace(latency, status="unchanged", reason=f"{latency.reason}; a contrast scenario: its "
                          "latency change is shown, not judged (its buffers and rows are)")
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
        current.scenario, current.query, status, reason, latency.changes, latency.test, diffs, plan, basis
    )


def is_contrast(result: ScenarioResult) -> bool:
    """An OFFSET contrast scenario (its canonical query is tagged ``contrast``)."""
    query = QUERIES_BY_NAME.get(result.query)
    return query is not None and "contrast" in query.tags


def check_comparable(current: BenchmarkRun, baseline: BenchmarkRun, *, allow_different_sizes: bool = False) -> None:
    """Refuse (one line) to compare runs of different data sizes: their latencies measure different work.

    ``allow_different_sizes`` compares them anyway (deterministic metrics are then skipped: the data differs).
    """
    cur, base = current.environment, baseline.environment
    if allow_different_sizes or (cur.profile, dict(cur.data_sizes)) == (base.profile, dict(base.data_sizes)):
        return

    def size(env: EnvironmentFingerprint) -> str:
        messages = env.data_sizes.get("messages")
        return f"a {env.profile} run ({messages:,} messages)" if messages is not None else f"a {env.profile} run"

    raise ChatbenchError(
        f"the current file holds {size(cur)}, the baseline {size(base)}: runs of different data sizes are not "
        "comparable; compare two runs of one profile, or pass --allow-different-sizes to compare them anyway"
    )


def compare_runs(
    current: BenchmarkRun, baseline: BenchmarkRun, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Comparison:
    """Compare two benchmark runs: environment first, then every scenario, then the load run."""
    environment = compare_environment(current.environment, baseline.environment)
    for extra in (data_checksum(current, baseline), machine_load(current, baseline)):
        if extra is not None:
            environment = (*environment, extra)
    same_data = not any(d.field in DATA_FIELDS for d in environment)
    notes: list[str] = []
    noises = {basis: measured_noise(current, baseline, basis, thresholds) for basis in ("CPU time", "wall time")}

    def noise(basis: Basis) -> MeasuredNoise:
        return noises[basis]

    cur_by = {s.scenario: s for s in current.scenarios}
    base_by = {s.scenario: s for s in baseline.scenarios}
    names = list(cur_by) + [n for n in base_by if n not in cur_by]
    resolution = round_trip_resolution(current, baseline)
    cur_load, base_load = load_per_cpu(current), load_per_cpu(baseline)
    unlike_load = None  # both recorded, either busy (the machine_load warning above)
    if cur_load is not None and base_load is not None and (busy(cur_load) or busy(base_load)):
        unlike_load = (round(base_load, 2), round(cur_load, 2))
    scenarios = tuple(
        compare_scenario(cur_by.get(n), base_by.get(n), thresholds, same_data=same_data, noise=noise,
                         unlike_load=unlike_load, resolution_ms=resolution) for n in names
    )
    used = {item.basis for item in scenarios if item.basis is not None}
    for basis in sorted(used):
        notes.append(f"latency compared on {basis}; noise measured in both runs: {noises[basis].describe()}")
    load: tuple[ScenarioComparison, ...] = ()
    if current.load is not None and baseline.load is not None:
        load, load_notes = compare_load(current.load, baseline.load, thresholds, noises["wall time"])
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
    current: LoadResult, baseline: LoadResult, thresholds: Thresholds, noise: MeasuredNoise | None = None
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
        verdict = judge_latency(cur_samples, base_samples, thresholds, noise)
        status, reason = verdict.status, verdict.reason
        if cur_op.errors > base_op.errors and cur_op.errors > 0:
            status, reason = "regressed", f"errors {base_op.errors} → {cur_op.errors}; {reason}"
        items.append(ScenarioComparison(label, cur_op.query, status, reason, verdict.changes, verdict.test))
    return tuple(items), ()
