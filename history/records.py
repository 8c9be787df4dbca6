"""What the store keeps of a run: one ``RunRecord`` and one ``Measurement`` per scenario and metric.

Why these metrics: CPU time at p10 (the rounds no other process disturbed) and the deterministic
buffers and rows are the low-noise series a change point can be trusted on; wall p50/p95/p99 are what
users feel. Each value carries its interval (distribution-free, ``percentile_interval``; the judged
p95/p99 keep the interval the verdict used), so a trend plot shows how sure each point is.

Why a plan hash: a change point where the query's plan changed has its likely cause beside it.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from chatbench.benchmarks.results import BenchmarkRun, PlanRecord, ScenarioResult, from_json, to_json
from chatbench.benchmarks.stats import percentile_interval
from chatbench.reports.compare_stats import load_per_cpu

METRICS: tuple[str, ...] = ("cpu_p10", "wall_p50", "wall_p95", "wall_p99", "buffers", "rows")
"""Every metric the store records; ``cpu_p10`` and ``buffers`` are the low-noise ones."""
UNITS = {"cpu_p10": "ms", "wall_p50": "ms", "wall_p95": "ms", "wall_p99": "ms", "buffers": "pages", "rows": "rows"}
EXACT_METRICS = ("buffers", "rows")
"""Deterministic for the same data and plan: their interval is the value itself."""


@dataclass(frozen=True)
class Provenance:
    """Where a run came from in the code's history (not in the result file: given or read from git/CI)."""

    commit: str
    branch: str


@dataclass(frozen=True)
class RunRecord:
    """One run of one server, as the store keeps it (``run_key`` makes adding the same run twice a no-op)."""

    run_key: str
    run_id: str
    label: str
    kind: str
    commit: str
    branch: str
    recorded_at: str  # ISO 8601 UTC: when the run measured
    machine: str  # fingerprint: CPU model and count, backend, platform (see machine_fingerprint)
    pg_version: str
    profile: str
    data_checksum: str
    schema_fingerprint: str
    load_per_cpu: float | None = None  # the 1-minute load average per CPU around the run (None: not recorded)


@dataclass(frozen=True)
class Measurement:
    """One value of one metric of one scenario in one run, with its interval and the plan it ran."""

    query: str
    scenario: str
    metric: str
    value: float
    low: float
    high: float
    plan_hash: str  # "" when the run recorded no plan for the query


def machine_fingerprint(run: BenchmarkRun) -> str:
    """The kind of machine a run measured on. The host name is left out: CI runners of one kind get a new
    host name per job, and a series per job is no series; the host stays in each run's document."""
    env = run.environment
    parts = [env.cpu_model, str(env.cpu_count), env.backend, env.platform]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def plan_hashes(plans: Iterable[PlanRecord]) -> dict[str, str]:
    """Query -> a short hash of every plan shape the verification judged for it (all scenarios, modes)."""
    by_query: dict[str, list[str]] = {}
    for plan in plans:
        by_query.setdefault(plan.query, []).append(f"{plan.scenario}/{plan.mode}: {plan.shape}")
    return {query: hashlib.sha256("\n".join(sorted(shapes)).encode()).hexdigest()[:12]
            for query, shapes in by_query.items()}


def run_record(run: BenchmarkRun, label: str, provenance: Provenance) -> RunRecord:
    env = run.environment
    if label == run.run_id:  # a single-run result file is labelled by its run id: name the server instead,
        label = f"PostgreSQL {env.server_version} ({env.backend})"  # as the sign-off labels its servers
    key = hashlib.sha256(json.dumps([run.run_id, run.created_at, label]).encode()).hexdigest()[:24]
    return RunRecord(key, run.run_id, label, run.kind, provenance.commit, provenance.branch, run.created_at,
                     machine_fingerprint(run), env.server_version, env.profile, run.data_checksum or "",
                     env.schema_fingerprint, load_per_cpu(run))


def measurements(run: BenchmarkRun) -> tuple[Measurement, ...]:
    """Every metric of every measured scenario (a metric the run did not record is left out, not zero)."""
    plans = plan_hashes(run.plans)
    found: list[Measurement] = []
    for result in run.scenarios:
        plan = plans.get(result.query) or _shape_hash(result)
        for metric, value, low, high in _metrics(result):
            found.append(Measurement(result.query, result.scenario, metric, value, low, high, plan))
    return tuple(found)


def _shape_hash(result: ScenarioResult) -> str:
    shape = result.extra.get("plan_shape")
    return hashlib.sha256(str(shape).encode()).hexdigest()[:12] if shape else ""


def _metrics(result: ScenarioResult) -> Iterable[tuple[str, float, float, float]]:
    if result.cpu_ms:
        yield ("cpu_p10", _percentile(result.cpu_ms, 10), *percentile_interval(result.cpu_ms, 10))
    if result.samples_ms:
        yield ("wall_p50", _percentile(result.samples_ms, 50), *percentile_interval(result.samples_ms, 50))
        for statistic in ("p95", "p99"):
            judged = result.judgement(statistic)
            if judged is not None:
                yield f"wall_{statistic}", judged.value_ms, judged.low_ms, judged.high_ms
            else:
                percent = float(statistic[1:])
                yield (f"wall_{statistic}", _percentile(result.samples_ms, percent),
                       *percentile_interval(result.samples_ms, percent))
    if result.buffers is not None:
        total = float(result.buffers.total)
        yield "buffers", total, total, total
    rows = result.extra.get("rows_per_round", result.extra.get("rows"))
    if isinstance(rows, int | float) and not isinstance(rows, bool):
        yield "rows", float(rows), float(rows), float(rows)


def _percentile(samples: tuple[float, ...], percent: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(samples, dtype=float), percent))


def encode_run(run: BenchmarkRun) -> bytes:
    """The run's result document as the store keeps it: compact JSON, zlib-compressed (raw samples compress
    about 5x)."""
    return zlib.compress(to_json(run, indent=None).encode("utf-8"), 6)


def decode_run(document: bytes) -> BenchmarkRun:
    return from_json(zlib.decompress(document).decode("utf-8"))
