"""Series out of the store, and the change points found in each with their likely cause.

A series is one metric of one scenario on one kind of run: the same server label (PostgreSQL version
and backend), profile and machine fingerprint; mixing machines or versions would report the move
from one to the other as a change in the code. Points are in the order the runs happened.

The likely cause of a change point is what changed between the last run before it and the first at
it: the query's plan hash, the scenario's buffers, the data checksum, the PostgreSQL version, or the
machine's load. Runs measured under much more load than the series' usual are left out of the detection
(``Options.suspect_load``, ``suspect_loads``); the detector itself is ``chatbench.history.edivisive``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

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
    level_before: float  # the mean (t-test) or median (rank test) of the runs before it
    level_after: float
    cause: str  # "" when nothing recorded changed at the same point

    def line(self) -> str:
        direction = "slower/higher" if self.change > 0 else "faster/lower"
        cause = f"; likely cause: {self.cause}" if self.cause else "; no plan, buffer or data change at this point"
        return (f"{self.series.scenario} {self.series.metric}: {self.change:+.1%} ({direction}, "
                f"{self.level_before:.4g} -> {self.level_after:.4g}) at run {self.index + 1}, commits "
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


def detect(series: Series, options: edivisive.Options = edivisive.DEFAULT, *,
           buffers: Series | None = None) -> list[ChangePoint]:
    """Change points of one series; ``buffers``: the same scenario's buffers series, to name a cause."""
    points = series.points
    found = []
    for previous, index, split in splits([p.measurement.value for p in points], noise(points),
                                         [p.run.load_per_cpu for p in points], options):
        before, at = points[previous], points[index]
        found.append(ChangePoint(series.key, index, before.run.commit, at.run.commit, at.run.recorded_at,
                                 split.change, split.pvalue, split.level_before, split.level_after,
                                 likely_cause(before, at, buffers, series.key.metric,
                                              load=_load_change(series, index))))
    return found


def appeared(series: Series, options: edivisive.Options = edivisive.DEFAULT, *, buffers: Series | None = None,
             near: int = 2) -> list[ChangePoint]:
    """The change points the series' latest run made appear: found with it, none within ``near`` runs
    found without it.

    Why not "a change point at the latest run": the rank test needs a few runs at a new level before its
    p-value can pass (3 runs after 30), so a step is found a few runs after it began, at its first run;
    what a CI job asks of its run is what that run added to the series."""
    if len(series.points) < 2:
        return []
    earlier = [c.index for c in detect(replace(series, points=series.points[:-1]), options)]
    return [c for c in detect(series, options, buffers=buffers) if all(abs(c.index - i) > near for i in earlier)]


def splits(values: Sequence[float], noise: Sequence[float], loads: Sequence[float | None],
           options: edivisive.Options) -> list[tuple[int, int, edivisive.Split]]:
    """(index of the last run before, index of the first at the new level, its split) per change point.

    Runs recorded under suspect load (``suspect_loads``) are left out: never a change point themselves,
    and on neither side of one; their values say more about the other processes than about the code."""
    kept = [i for i, bad in enumerate(suspect_loads(loads, options.suspect_load)) if not bad]
    found = edivisive.change_points([values[i] for i in kept], options, noise=[noise[i] for i in kept])
    return [(kept[s.index - 1], kept[s.index], s) for s in found]


def noise(points: Sequence[Point]) -> list[float]:
    """Each run's relative interval half-width: how well the run itself knows its value (0 when exact)."""
    return [(p.measurement.high - p.measurement.low) / (2 * p.measurement.value) if p.measurement.value > 0
            else 0.0 for p in points]


def suspect_loads(loads: Sequence[float | None], factor: float) -> list[bool]:
    """Runs whose load per CPU was above ``factor`` times the series' median load (``factor`` 0: none)."""
    recorded = [load for load in loads if load is not None]
    if not factor or not recorded:
        return [False] * len(loads)
    median = statistics.median(recorded)
    return [load is not None and median > 0 and load > factor * median for load in loads]


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


def detect_all(all_series: Sequence[Series], options: edivisive.Options = edivisive.DEFAULT) -> list[ChangePoint]:
    buffers = {(s.key.scenario, s.key.label, s.key.profile, s.key.machine): s
               for s in all_series if s.key.metric == "buffers"}
    found: list[ChangePoint] = []
    for series in all_series:
        partner = buffers.get((series.key.scenario, series.key.label, series.key.profile, series.key.machine))
        found += detect(series, options, buffers=partner)
    return found
