"""What the store keeps of a run: one ``RunRecord`` and one ``Measurement`` per scenario and metric.

Why these metrics: CPU time at p10 (the rounds no other process disturbed) and the deterministic
buffers and rows are the low-noise series a change point can be trusted on; wall p50/p95/p99 are what
users feel. Each value carries its interval (distribution-free, ``percentile_interval``; the judged
p95/p99 keep the interval the verdict used), so a trend plot shows how sure each point is.

Why a plan hash: a change point where the query's plan changed has its likely cause beside it.

A rehearsal (``rehearsal.json``) is kept in the same rows (``rehearsal_rows``): its result is per statement,
and the statements change with every release, so its series are per app operation instead, what a team
follows from release to release: ``rehearse:reads`` and ``rehearse:appends`` (how long one statement
kept that access out, measured and extrapolated to production, the app queries seen blocked, the app's
p99 while the migration ran) and ``rehearse:migration`` (its duration, the longest wait for a lock, its
WAL); ``_rehearsal_values`` says which field each comes from. Their plan hash is the migration's (its
statements' SQL), so a change point where the migration itself changed names that as its likely cause.
Values of one rehearsal have no interval (one run, no percentile of rounds): ``low == high == value``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatbench.benchmarks.results import BenchmarkRun, PlanRecord, ScenarioResult, from_json, to_json
from chatbench.benchmarks.stats import percentile_interval
from chatbench.errors import ChatbenchError
from chatbench.machine import cpu_model
from chatbench.reports.compare_stats import load_per_cpu

METRICS: tuple[str, ...] = ("cpu_p10", "wall_p50", "wall_p95", "wall_p99", "buffers", "rows")
"""Every metric the store records; ``cpu_p10`` and ``buffers`` are the low-noise ones."""
REHEARSAL_KIND = "rehearsal"
"""``RunRecord.kind`` of a rehearsal (a benchmark run's is its ``BenchmarkRun.kind``): never a baseline."""
REHEARSAL_PREFIX = "rehearse:"
"""Scenario names of a rehearsal's series: ``rehearse:reads``, ``rehearse:appends``, ``rehearse:migration``."""
REHEARSAL_QUERY = "migration"
UNITS = {"cpu_p10": "ms", "wall_p50": "ms", "wall_p95": "ms", "wall_p99": "ms", "buffers": "pages", "rows": "rows",
         "blocked_s": "s", "blocked_prod_s": "s", "blocked_queries": "queries", "app_p99_ms": "ms",
         "duration_s": "s", "lock_wait_s": "s", "wal_bytes": "bytes"}
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
    return _machine(env.cpu_model, env.cpu_count, env.backend, env.platform)


def _machine(cpu: str, cpus: int, backend: str, system: str) -> str:
    return hashlib.sha256("|".join([cpu, str(cpus), backend, system]).encode()).hexdigest()[:12]


def _run_key(run_id: str, created_at: str, label: str) -> str:
    return hashlib.sha256(json.dumps([run_id, created_at, label]).encode()).hexdigest()[:24]


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
    return RunRecord(_run_key(run.run_id, run.created_at, label), run.run_id, label, run.kind, provenance.commit,
                     provenance.branch, run.created_at, machine_fingerprint(run), env.server_version, env.profile,
                     run.data_checksum or "", env.schema_fingerprint, load_per_cpu(run))


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
    return float(np.percentile(np.asarray(samples, dtype=float), percent))


def encode_run(run: BenchmarkRun) -> bytes:
    """The run's result document as the store keeps it: compact JSON, zlib-compressed (raw samples compress
    about 5x)."""
    return zlib.compress(to_json(run, indent=None).encode("utf-8"), 6)


def decode_run(document: bytes) -> BenchmarkRun:
    return from_json(zlib.decompress(document).decode("utf-8"))


def is_rehearsal_document(data: Any) -> bool:
    """A ``rehearsal.json`` (``chatbench rehearse``, ``chatbench.rehearse.result``)."""
    return isinstance(data, Mapping) and data.get("kind") == "chatbench-rehearsal"


def rehearsal_rows(data: Mapping[str, Any], provenance: Provenance,
                   source: str = "rehearsal.json") -> tuple[RunRecord, tuple[Measurement, ...]]:
    """What the store keeps of a rehearsal document: one run and its ``rehearse:*`` series, at the profile's
    size (the larger one, ``Rehearsal.measured``).

    Read from the document, not through ``convert.from_plain``: the document is a rendering whose values that
    could not be computed are written as null, which its classes do not read back. Only a rehearsal whose
    migration completed with its lock evidence whole is recorded: the times of a failed or hung migration,
    or of a sampler that stopped early, are not the migration's, and in a series they would be a change
    the code never made. The machine is the one recording it (the document names no CPU): add a
    ``rehearsal.json`` on the machine that rehearsed it."""
    try:
        measured = data["sizes"][-1]
        server = data["server"]
        label = f"PostgreSQL {server['version']} ({server['backend']})"
        if measured["outcome"] != "completed" or measured.get("sampler_error"):
            why = measured.get("sampler_error") or measured.get("failure") or measured["outcome"]
            raise ChatbenchError(f"{source}: its migration did not complete with whole lock evidence at "
                                 f"{measured['messages']:,} messages ({why}): nothing to record")
        created_at = str(data["created_at"])
        statements = list(measured["statements"])
        migration = "\n".join(str(s["sql"]) for s in statements)
        run_id = "rehearsal-" + hashlib.sha256(json.dumps([created_at, data.get("migration"), data.get("command"),
                                                            migration]).encode()).hexdigest()[:12]
        record = RunRecord(_run_key(run_id, created_at, label), run_id, label, REHEARSAL_KIND, provenance.commit,
                           provenance.branch, created_at, _machine(cpu_model(), os.cpu_count() or 0,
                                                                    str(server["backend"]), platform.platform()),
                           str(server["version"]), str(measured["profile"]), "", "", None)
        plan = hashlib.sha256(migration.encode()).hexdigest()[:12]
        values = [Measurement(REHEARSAL_QUERY, f"{REHEARSAL_PREFIX}{scenario}", metric, value, value, value, plan)
                  for scenario, metric, value in _rehearsal_values(data, measured, statements)
                  if value is not None and math.isfinite(value)]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ChatbenchError(f"{source}: a rehearsal.json that does not read ({type(exc).__name__}: {exc}); "
                             "add one written by chatbench rehearse") from None
    return record, tuple(values)


def _rehearsal_values(data: Mapping[str, Any], measured: Mapping[str, Any],
                      statements: list[Any]) -> Iterable[tuple[str, str, float | None]]:
    """(scenario, metric, value) at the profile's size. Per app access: ``blocked_s`` the longest time one
    statement kept it out of a table once it held the lock (the estimates' measured ``large_s``; 0 when none
    did), ``blocked_prod_s`` the same extrapolated to ``production_messages``, ``blocked_queries`` the app
    queries seen blocked behind a held lock or queued behind a waiting one, ``app_p99_ms`` the app's p99 while
    the migration ran. The migration: ``duration_s``, ``lock_wait_s`` (the longest a statement waited for a
    lock that blocks the app), ``wal_bytes`` (None: not observable)."""
    for access in ("reads", "appends"):
        estimates = [e for e in data.get("estimates", ()) if e["access"] == access]
        blocked = sum(int(s["blocked"].get(access, {}).get("count", 0)) for s in statements)
        queued = sum(int(q["count"]) for s in statements for q in s.get("queue", ()) if q["access"] == access)
        during = measured.get("phases", {}).get("during", {}).get(access, {})
        yield access, "blocked_s", max((float(e["large_s"]) for e in estimates), default=0.0)
        yield access, "blocked_prod_s", max((float(e["extrapolated_s"]) for e in estimates), default=0.0)
        yield access, "blocked_queries", float(blocked + queued)
        yield access, "app_p99_ms", None if during.get("p99_ms") is None else float(during["p99_ms"])
    wal = measured.get("migration_wal_bytes")
    yield "migration", "duration_s", float(measured["migration_s"])
    yield "migration", "lock_wait_s", max((float(s.get("waited_s", 0.0)) for s in statements), default=0.0)
    yield "migration", "wal_bytes", None if wal is None else float(wal)
