"""The versioned JSON result model every measuring stage writes and every report reads.

One ``BenchmarkRun`` is one measuring session: an ``EnvironmentFingerprint`` (what it ran on), and
either per-scenario single-client results (``ScenarioResult``: raw samples, statistics, buffers,
target, verdict) or a concurrent load result (``LoadResult``), or both. All classes are frozen
dataclasses; a document is written and read by the one converter (``chatbench.convert``: fields by name),
``to_json``/``from_json`` are the file's text, and what the format adds to the fields (``format_version``
first, the upgrade of older versions, derived keys) is declared here beside each class.

Comparability: each ``ScenarioResult`` carries ``params_version``, a hash of the SQL text, the
scenario's parameter definition and the schema fingerprint (the asv idea): a result is only
compared with another that has the same version. ``EnvironmentFingerprint.differences`` names the
environment fields that differ, so a comparison can say "the environment changed" rather than
"the code regressed".

Format history (``format_version``; bump it on any change a reader must know about, and
teach ``_upgrade`` to read the older shape):

- 1 (2026-11-24): first version. ``BenchmarkRun{format_version, kind, run_id, created_at,
  environment, scenarios[], load, notes}``; ``ScenarioResult`` samples are milliseconds;
  ``LoadResult`` percentiles come from HDR histograms corrected for coordinated omission and
  each operation keeps its base64 HDR encoding (the raw data of a load run).
- 2 (2026-11-24): ``ScenarioResult.judged_ms`` (``{"p95": .., "p99": ..}``): the percentiles the
  verdict is judged on, the median over consecutive batches of rounds, robust to bursts of other work
  on a shared machine; ``stats`` stays the pooled summary of all samples. ``LoadResult.correction`` (how coordinated
  omission was corrected). Version 1 files read as judged on the pooled percentiles.
- 3 (2026-11-25): the free-form ``notes`` object is gone; what it carried is typed, at the top level
  of the run: ``settings`` (``RunSettings``: rounds, warmup, driver, targets_file, scenario_budget_s),
  ``skipped`` (scenario -> why it was not measured), ``depth_scaling`` (prefix -> ``DepthCurve``),
  ``seed_from_cache``, ``data_checksum``, ``machine`` (``MachineLoad``: 1-minute load average per
  scenario, before and after the measurement, cpus, and the share of CPU time busy and stolen),
  ``plans`` (``PlanRecord``: the verification's plans, for an exact comparison) and ``fidelity``
  (``FidelityReport``). Versions 1 and 2 are read by moving their ``notes`` keys into these fields
  (``_upgrade``); an unknown note is dropped.
  Latency is judged with an interval (``chatbench.benchmarks.verdict``): ``ScenarioResult.latency``
  holds one ``LatencyJudgement`` per target (value shown, interval low/high, PASS/FAIL/INCONCLUSIVE),
  ``cpu_ms`` the CPU time of each round (client + backend; empty when not measurable), ``undecided``
  the lines of INCONCLUSIVE targets, ``attempts`` how often the scenario was measured; ``verdict``
  may be INCONCLUSIVE. ``judged_ms`` (version 2) is dropped: the value shown is the percentile over
  every round of the deciding measurement. The run gains ``calibration`` (the interleaved noise probes,
  ``chatbench.benchmarks.noise.CalibrationProbe``) and ``cpu_time`` (how CPU time was measured, or why
  not). Older files keep their stored verdicts and failures and have no judgements.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from chatbench import convert
from chatbench.benchmarks.fidelity_result import FidelityReport
from chatbench.benchmarks.noise import CalibrationProbe
from chatbench.benchmarks.stats import GrowthFit, SampleStats, describe
from chatbench.benchmarks.verdict import LatencyJudgement, judge_target
from chatbench.convert import DocumentError, fields_plain, from_plain, to_plain
from chatbench.errors import ChatbenchError, redact
from chatbench.files import write_atomically

FORMAT_VERSION = 3
"""The format ``to_json`` writes; ``from_json`` reads this and every older version listed above."""

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "NO TARGET"]
RunKind = Literal["bench", "load", "fidelity"]


def params_version(sql: str, params: Mapping[str, Any], schema_fingerprint: str) -> str:
    """A short stable hash of what a benchmark measures: SQL + parameter definition + schema.

    ``params`` should describe the scenario (e.g. depth, page size, the parameter sets rotated
    through), not a single value, and must be JSON-serialisable (datetimes as ISO strings).
    """
    payload = json.dumps({"sql": sql, "params": params, "schema": schema_fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EnvironmentFingerprint:
    """Everything about where and on what a run happened that could explain a difference in numbers."""

    server_version: str
    server_version_num: int
    server_settings: Mapping[str, str]  # non-default settings (name -> value with unit)
    backend: str  # local | container | dsn
    cpu_model: str
    cpu_count: int
    pinning: Mapping[str, Any]  # a PinningResult's document (chatbench.convert.to_plain)
    python_version: str
    libraries: Mapping[str, str]  # distribution -> version
    schema_fingerprint: str
    profile: str
    spec: Mapping[str, Any]
    seed: int
    data_sizes: Mapping[str, int]  # rows per table
    platform: str = ""
    hostname: str = ""

    # Fields whose difference makes numbers incomparable (vs. merely noteworthy).
    DECISIVE: ClassVar[tuple[str, ...]] = (
        "server_version_num",
        "server_settings",
        "backend",
        "cpu_model",
        "cpu_count",
        "schema_fingerprint",
        "spec",
        "seed",
        "data_sizes",
    )

    def differences(self, other: EnvironmentFingerprint, *, decisive_only: bool = False) -> tuple[str, ...]:
        """Names of the fields that differ between two fingerprints (sorted, stable)."""
        names = self.DECISIVE if decisive_only else tuple(f.name for f in fields(self))
        return tuple(sorted(n for n in names if to_plain(getattr(self, n)) != to_plain(getattr(other, n))))


@dataclass(frozen=True)
class BufferUsage:
    """Shared buffers one execution touched (EXPLAIN (ANALYZE, BUFFERS) of a representative run)."""

    shared_hit: int
    shared_read: int
    shared_dirtied: int = 0
    shared_written: int = 0

    @property
    def total(self) -> int:
        """Pages touched (hit + read): the budgeted number, independent of cache warmth."""
        return self.shared_hit + self.shared_read


@dataclass(frozen=True)
class Target:
    """A scenario's budget: latency percentiles in ms and pages touched per execution."""

    p95_ms: float | None = None
    p99_ms: float | None = None
    buffers: int | None = None
    why: str = ""

    def buffers_miss(self, scenario: str, buffers: BufferUsage | None) -> str | None:
        """The one line of a missed buffer budget (deterministic: judged exactly), e.g.
        ``latest_page: buffers 900 > target 120``."""
        if self.buffers is not None and buffers is not None and buffers.total > self.buffers:
            return f"{scenario}: buffers {buffers.total} > target {self.buffers}"
        return None

    def latency_budgets(self) -> tuple[tuple[str, float], ...]:
        return tuple((stat, budget) for stat, budget in (("p95", self.p95_ms), ("p99", self.p99_ms))
                     if budget is not None)


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario of one query, measured single-client: raw samples kept, verdict against its target.

    ``verdict``: FAIL when the buffers budget is missed or a latency target FAILs (``latency``), else
    INCONCLUSIVE when a latency target could not be decided on this machine, else PASS (NO TARGET
    without a target). ``failures`` and ``undecided`` hold the one-line reasons.
    """

    scenario: str
    query: str  # canonical query name
    params_version: str
    samples_ms: tuple[float, ...]  # wall time per round
    stats: SampleStats
    buffers: BufferUsage | None = None
    target: Target | None = None
    verdict: Verdict = "NO TARGET"
    failures: tuple[str, ...] = ()  # the one-line messages of missed budgets
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. depth, rows, transaction handling
    cpu_ms: tuple[float, ...] = ()  # CPU time per round, client + backend (empty: not measurable)
    latency: tuple[LatencyJudgement, ...] = ()  # one per latency target
    undecided: tuple[str, ...] = ()  # the one-line messages of INCONCLUSIVE targets
    attempts: int = 1  # measurements taken (more than one when a target was undecided)

    @classmethod
    def judge(
        cls,
        *,
        scenario: str,
        query: str,
        params_version: str,
        samples_ms: Iterable[float],
        buffers: BufferUsage | None = None,
        target: Target | None = None,
        extra: Mapping[str, Any] | None = None,
        cpu_ms: Iterable[float] = (),
        added_ms: Mapping[str, float] | None = None,
        attempts: int = 1,
    ) -> ScenarioResult:
        """Build a result from raw samples: statistics, latency judgements and the verdict in one place."""
        samples = tuple(float(s) for s in samples_ms)
        cpu = tuple(float(c) for c in cpu_ms)
        stats = describe(samples)
        latency: tuple[LatencyJudgement, ...] = ()
        failures: list[str] = []
        undecided: list[str] = []
        verdict: Verdict = "NO TARGET"
        if target is not None:
            latency = tuple(judge_target(stat, budget, samples, cpu, added_ms)
                            for stat, budget in target.latency_budgets())
            failures = [j.line(scenario) for j in latency if j.decision == "FAIL"]
            buffers_line = target.buffers_miss(scenario, buffers)
            if buffers_line is not None:
                failures.append(buffers_line)
            undecided = [j.line(scenario) + (f" (after {attempts} measurements)" if attempts > 1 else "")
                         for j in latency if j.decision == "INCONCLUSIVE"]
            verdict = "FAIL" if failures else ("INCONCLUSIVE" if undecided else "PASS")
        return cls(scenario, query, params_version, samples, stats, buffers, target, verdict, tuple(failures),
                   dict(extra or {}), cpu, latency, tuple(undecided), attempts)

    def judgement(self, statistic: str) -> LatencyJudgement | None:
        return next((j for j in self.latency if j.statistic == statistic), None)

    @property
    def cpu_stats(self) -> SampleStats | None:
        return describe(self.cpu_ms) if self.cpu_ms else None


@dataclass(frozen=True)
class OperationLoadResult:
    """One operation of a load mix: counts and latency percentiles from its (CO-corrected) HDR histogram."""

    operation: str
    query: str
    count: int
    errors: int
    percentiles_ms: Mapping[str, float]  # "p50", "p90", "p95", "p99", "p99.9", "max"
    mean_ms: float
    histogram: str  # base64 HDR histogram encoding (microseconds): the raw data of a load run


@dataclass(frozen=True)
class LoadResult:
    """A concurrent load run: N client processes, a weighted mix, closed loop or a fixed arrival rate."""

    clients: int
    duration_s: float  # measured wall time of the measuring phase
    mode: Literal["closed", "open"]
    rate_per_s: float | None  # total target arrival rate in open-loop mode
    weights: Mapping[str, float]
    throughput_per_s: float  # completed operations per second, all clients
    total: int
    errors: int
    corrected_for_coordinated_omission: bool
    operations: tuple[OperationLoadResult, ...]
    overall: OperationLoadResult
    error_samples: tuple[str, ...] = ()
    correction: str = ""  # how coordinated omission was corrected (closed vs open loop)
    not_measured: Mapping[str, str] = field(default_factory=dict)  # operation -> why it left the mix (refused)


def _load_document(load: LoadResult) -> dict[str, Any]:
    """``not_measured`` only when an operation left the mix: a document without it reads and writes back as it was."""
    data = fields_plain(load)
    if not load.not_measured:
        del data["not_measured"]
    return data


convert.register(LoadResult, write=_load_document)


@dataclass(frozen=True)
class RunSettings:
    """How a run measured: rounds and warm-up per scenario, driver, targets file, per-scenario budget."""

    rounds: int
    warmup: int
    driver: str
    targets_file: str = ""
    scenario_budget_s: float | None = None  # None: every round, however long


@dataclass(frozen=True)
class DepthCurve:
    """p50 latency and buffers of one page kind (keyset or OFFSET) over page depth, with growth classes."""

    depths: tuple[int, ...]
    p50_ms: tuple[float, ...]
    latency: GrowthFit
    buffers: tuple[int, ...] = ()
    buffer_growth: GrowthFit | None = None


def _depth_curve_document(curve: DepthCurve) -> dict[str, Any]:
    """Buffers travel with their growth class: a curve without one (buffers not measured) writes neither."""
    data = fields_plain(curve)
    if curve.buffer_growth is None:
        del data["buffers"], data["buffer_growth"]
    return data


convert.register(DepthCurve, write=_depth_curve_document)


@dataclass(frozen=True)
class MachineLoad:
    """How busy the machine was while measuring: the 1-minute load average, per CPU."""

    cpus: int
    per_scenario: tuple[float, ...] = ()  # 1-minute load average as each scenario started
    before: float | None = None  # around the whole measurement (the sign-off records these)
    after: float | None = None
    busy_share: float | None = None  # share of all CPUs' time not idle while measuring (/proc/stat)
    steal_share: float | None = None  # share of all CPUs' time a hypervisor gave to other guests

    @property
    def busy(self) -> bool:
        """The load average exceeded the core count while a scenario ran: other work competed for the cores."""
        return any(value > self.cpus for value in self.per_scenario)

    @property
    def peak_per_cpu(self) -> float | None:
        """The higher of the load averages before and after the measurement, per CPU (None: not recorded)."""
        values = [v for v in (self.before, self.after) if v is not None]
        return max(values) / max(self.cpus, 1) if values else None

    def describe(self) -> str:
        """One line naming how busy the machine was, for a report."""
        loads = [v for v in (*self.per_scenario, self.before, self.after) if v is not None]
        parts = [f"1-min load average up to {max(loads):.1f} on {self.cpus} CPUs" if loads else ""]
        if self.busy_share is not None:
            parts.append(f"CPUs {self.busy_share:.0%} busy")
        if self.steal_share is not None:
            parts.append(f"{self.steal_share:.1%} stolen by the hypervisor")
        return ", ".join(p for p in parts if p) or "not recorded"


@dataclass(frozen=True)
class PlanRecord:
    """One plan the verification judged (scenario, mode, shape, buffers): compared exactly between runs."""

    scenario: str
    query: str
    mode: str  # custom | generic
    buffers: int
    shape: str
    description: str = ""
    execution_ms: float = 0.0


@dataclass(frozen=True)
class BenchmarkRun:
    """One measuring session: its environment and its results. ``verdict`` is FAIL if any scenario failed."""

    kind: RunKind
    run_id: str
    created_at: str  # ISO 8601 UTC
    environment: EnvironmentFingerprint
    scenarios: tuple[ScenarioResult, ...] = ()
    load: LoadResult | None = None
    settings: RunSettings | None = None
    skipped: Mapping[str, str] = field(default_factory=dict)  # scenario -> why it was not measured
    depth_scaling: Mapping[str, DepthCurve] = field(default_factory=dict)  # "keyset_page" / "offset_page"
    seed_from_cache: bool | None = None
    data_checksum: str | None = None  # content checksum of the seeded data (same rows <=> same checksum)
    machine: MachineLoad | None = None
    plans: tuple[PlanRecord, ...] = ()  # the verification's plans, travelling with the run
    fidelity: FidelityReport | None = None  # ``chatbench bench --fidelity``
    calibration: tuple[CalibrationProbe, ...] = ()  # the noise probes interleaved with the scenarios
    cpu_time: str = ""  # how CPU time per round was measured, or why it was not
    format_version: int = FORMAT_VERSION

    @property
    def verdict(self) -> Verdict:
        verdicts = {s.verdict for s in self.scenarios}
        for verdict in ("FAIL", "INCONCLUSIVE", "PASS"):
            if verdict in verdicts:
                return verdict
        return "NO TARGET"

    @property
    def failures(self) -> tuple[str, ...]:
        return tuple(line for s in self.scenarios for line in s.failures)

    @property
    def undecided(self) -> tuple[str, ...]:
        return tuple(line for s in self.scenarios for line in s.undecided)

    def scenario(self, name: str) -> ScenarioResult:
        for result in self.scenarios:
            if result.scenario == name:
                return result
        raise KeyError(name)


def _current_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """A run document of any readable version as the fields of this one (read as ``FORMAT_VERSION``; a null
    ``cpu_time`` as not measured, as it always has)."""
    data = _upgrade(data)
    return {**data, "cpu_time": data.get("cpu_time") or "", "format_version": FORMAT_VERSION}


convert.register(BenchmarkRun, first=("format_version",), read=_current_fields)  # the version leads: read first


def to_json(run: BenchmarkRun, *, indent: int | None = 1) -> str:
    return json.dumps(to_plain(run), indent=indent, sort_keys=False, allow_nan=True)


def from_json(text: str) -> BenchmarkRun:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChatbenchError(
            f"result file is not JSON ({exc.msg} at line {exc.lineno}); pass a file written by chatbench"
        ) from exc
    if not isinstance(data, dict) or "format_version" not in data:
        raise ChatbenchError(
            "result JSON has no format_version; pass a file written by chatbench "
            "(pytest-benchmark JSON holds its results under benchmarks[].extra_info)"
        )
    try:
        return from_plain(BenchmarkRun, data)
    except DocumentError as exc:
        raise ChatbenchError(f"result file does not read as a run ({exc}); pass a file written by chatbench") from None


def write(run: BenchmarkRun, path: str | os.PathLike[str]) -> Path:
    """Write the run's JSON atomically (a reader never sees half a file), scrubbed of secrets."""
    return write_atomically(Path(path), redact(to_json(run)) + "\n")


def read(path: str | os.PathLike[str]) -> BenchmarkRun:
    source = Path(path)
    if not source.is_file():
        raise ChatbenchError(f"result file {source} does not exist; run `chatbench bench` or pass another path")
    return from_json(source.read_text())


def _upgrade(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Bring an older format up to ``FORMAT_VERSION`` (one step per version in the history above)."""
    version = data.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ChatbenchError(f"result format_version {version!r} is invalid; pass a file written by chatbench")
    if version > FORMAT_VERSION:
        raise ChatbenchError(
            f"result format_version {version} is newer than this chatbench reads ({FORMAT_VERSION}); upgrade chatbench"
        )
    # 1 -> 2: the new fields (judged_ms, correction) default to empty: judged on pooled percentiles.
    if version < 3:
        data = _notes_to_fields(data)
    return data


def _notes_to_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """2 -> 3: the keys of the free-form ``notes`` object, as the typed fields that replaced them."""
    notes = data.get("notes") or {}
    upgraded = {k: v for k, v in data.items() if k != "notes"}
    if "rounds" in notes:
        upgraded["settings"] = {"rounds": notes["rounds"], "warmup": notes.get("warmup", 0),
                                "driver": notes.get("driver", "psycopg"), "targets_file": notes.get("targets_file", ""),
                                "scenario_budget_s": notes.get("scenario_budget_s")}
    upgraded["skipped"] = notes.get("skipped") or {}
    upgraded["depth_scaling"] = notes.get("depth_scaling") or {}
    upgraded["seed_from_cache"] = notes.get("seed_from_cache")
    upgraded["data_checksum"] = notes.get("data_checksum")
    recorded = notes.get("load_average")
    around: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
    if "load_average_1min" in notes or around:
        upgraded["machine"] = {"cpus": around.get("cpus") or data["environment"].get("cpu_count") or 1,
                               "per_scenario": notes.get("load_average_1min") or [],
                               "before": around.get("before"), "after": around.get("after")}
    upgraded["plans"] = notes.get("plans") or []
    upgraded["fidelity"] = notes.get("fidelity")
    return upgraded


def local_platform() -> tuple[str, str]:
    """(platform string, hostname) for the fingerprint."""
    return platform.platform(), platform.node()
