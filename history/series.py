"""Series out of the store, and the change points found in each with their likely cause.

A series is one metric of one scenario on one kind of run: the same server label (PostgreSQL version
and backend), profile and machine fingerprint; mixing machines or versions would report the move
from one to the other as a change in the code. Points are in the order the runs happened.

The likely cause of a change point is what changed between the last run before it and the first at
it: the query's plan hash, the scenario's buffers, the data checksum, or the PostgreSQL version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatbench.history import edivisive
from chatbench.history.records import EXACT_METRICS, Measurement, RunRecord
from chatbench.history.store import StoredValue

BUSIER = 0.5
"""A change of the load average per CPU (1-minute, around the run) this large is named as a likely cause."""


@dataclass(frozen=True)
class SeriesKey:
    scenario: str
    metric: str
    label: str
    profile: str
    machine: str

    def title(self) -> str:
        return f"{self.scenario} {self.metric} ({self.label}, {self.profile}, machine {self.machine})"


@dataclass(frozen=True)
class Point:
    run: RunRecord
    measurement: Measurement


@dataclass(frozen=True)
class Series:
    key: SeriesKey
    query: str
    points: tuple[Point, ...]

    def values(self) -> list[float]:
        return [p.measurement.value for p in self.points]


@dataclass(frozen=True)
class ChangePoint:
    """A change point: the first run at the new level, the commit range it lies in, and why it may be."""

    series: SeriesKey
    index: int
    first_commit: str  # the last commit before the change (the range's start, exclusive)
    last_commit: str  # the first commit at the new level
    recorded_at: str
    change: float  # relative change of the mean (0.10: 10% higher)
    pvalue: float
    mean_before: float
    mean_after: float
    cause: str  # "" when nothing recorded changed at the same point

    def line(self) -> str:
        direction = "slower/higher" if self.change > 0 else "faster/lower"
        cause = f"; likely cause: {self.cause}" if self.cause else "; no plan, buffer or data change at this point"
        return (f"{self.series.scenario} {self.series.metric}: {self.change:+.1%} ({direction}, "
                f"{self.mean_before:.4g} -> {self.mean_after:.4g}) at run {self.index + 1}, commits "
                f"{_short(self.first_commit)}..{_short(self.last_commit)}, p={self.pvalue:.2g}{cause}")


def _short(commit: str) -> str:
    return commit[:10] if commit else "unknown"


def build_series(rows: Sequence[StoredValue]) -> list[Series]:
    grouped: dict[SeriesKey, list[Point]] = {}
    queries: dict[SeriesKey, str] = {}
    for row in rows:
        run, value = row.run, row.measurement
        key = SeriesKey(value.scenario, value.metric, run.label, run.profile, run.machine)
        grouped.setdefault(key, []).append(Point(run, value))
        queries[key] = value.query
    return [Series(key, queries[key], tuple(points)) for key, points in grouped.items()]


def detect(series: Series, *, window: int = edivisive.WINDOW, max_pvalue: float = edivisive.MAX_PVALUE,
           min_magnitude: float = edivisive.MIN_MAGNITUDE, buffers: Series | None = None) -> list[ChangePoint]:
    """Change points of one series; ``buffers``: the same scenario's buffers series, to name a cause."""
    splits = edivisive.change_points(series.values(), window=window, max_pvalue=max_pvalue,
                                     min_magnitude=min_magnitude)
    found = []
    for split in splits:
        before, at = series.points[split.index - 1], series.points[split.index]
        found.append(ChangePoint(series.key, split.index, before.run.commit, at.run.commit, at.run.recorded_at,
                                 split.change, split.pvalue, split.mean_before, split.mean_after,
                                 likely_cause(before, at, buffers, series.key.metric,
                                              load=_load_change(series, split.index))))
    return found


def _load_change(series: Series, index: int, runs: int = 5) -> tuple[float, float] | None:
    """Mean load per CPU over the ``runs`` runs before ``index`` and the ``runs`` from it (None: not recorded)."""
    def mean(points: Sequence[Point]) -> float | None:
        loads = [p.run.load_per_cpu for p in points if p.run.load_per_cpu is not None]
        return sum(loads) / len(loads) if loads else None

    before, after = mean(series.points[max(0, index - runs):index]), mean(series.points[index:index + runs])
    return None if before is None or after is None else (before, after)


def likely_cause(before: Point, at: Point, buffers: Series | None, metric: str,
                 load: tuple[float, float] | None = None) -> str:
    causes = []
    if before.measurement.plan_hash != at.measurement.plan_hash:
        old_plan, new_plan = before.measurement.plan_hash or "none", at.measurement.plan_hash or "none"
        causes.append(f"plan changed ({old_plan} -> {new_plan})")
    if buffers is not None and metric not in EXACT_METRICS:
        by_run = {p.run.run_key: p.measurement.value for p in buffers.points}
        old, new = by_run.get(before.run.run_key), by_run.get(at.run.run_key)
        if old is not None and new is not None and old != new:
            causes.append(f"buffers {old:.0f} -> {new:.0f}")
    if before.run.data_checksum != at.run.data_checksum:
        causes.append("data changed (checksum)")
    if load is not None and abs(load[1] - load[0]) >= BUSIER:
        causes.append(f"machine load {load[0]:.1f} -> {load[1]:.1f} per CPU around it (other processes)")
    if before.run.pg_version != at.run.pg_version:
        causes.append(f"PostgreSQL {before.run.pg_version} -> {at.run.pg_version}")
    return "; ".join(causes)


def detect_all(all_series: Sequence[Series], **options: float | int) -> list[ChangePoint]:
    buffers = {(s.key.scenario, s.key.label, s.key.profile, s.key.machine): s
               for s in all_series if s.key.metric == "buffers"}
    found: list[ChangePoint] = []
    for series in all_series:
        partner = buffers.get((series.key.scenario, series.key.label, series.key.profile, series.key.machine))
        found += detect(series, buffers=partner, **options)  # type: ignore[arg-type]
    return found
