"""Performance history: every run kept in a store, change points found across runs, exports for other tools.

Why its own layer, between the top and ``reports``: it reads the result files the way ``compare`` does
(``chatbench.reports.inputs``) and draws as the reports do (``chatbench.reports.plots``), and the
sign-off, bench and rehearse commands (the top) record into it; ``reports`` renders one run or one
comparison and never needs the history, so nothing below imports it.

Runs enter the store through ``chatbench history add RESULT.json``, and from ``chatbench signoff``,
``chatbench bench`` and ``chatbench rehearse`` given ``--history``: each calls ``record_file`` on the result
document it wrote, so there is one way into the store (a ``rehearsal.json`` becomes ``rehearse:*`` series,
``records.rehearsal_rows``). ``signoff --baseline history:BRANCH`` takes its baseline from
``baseline_from_history``: the median run of the branch's last ``BASELINE_RUNS``, compared with the
current run by ``chatbench.reports.compare`` as a baseline file would be; ``changes_on_run`` puts the
current run at the end of the branch's series and returns the detector's change points on it, which
the sign-off re-measures before it calls them a FAIL.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.errors import ChatbenchError, redact
from chatbench.history.records import (
    REHEARSAL_KIND,
    Provenance,
    decode_run,
    encode_run,
    is_rehearsal_document,
    machine_fingerprint,
    measurements,
    rehearsal_rows,
    run_record,
)
from chatbench.history.series import ChangePoint, appeared, build_series
from chatbench.history.store import StoredValue, opened
from chatbench.reports.inputs import read_runs

__all__ = ["Added", "BaselineRun", "HistoryBaseline", "baseline_from_history", "changes_on_run",
           "is_history_baseline", "record_file", "record_run"]

BASELINE_PREFIX = "history:"
BASELINE_RUNS = 10
"""Runs of the branch (per server label) a ``history:BRANCH`` baseline is chosen from: the last N.

Why 10: enough that one outlier run (a busy runner) is never the median, few enough that a baseline
still follows a branch that moved on purpose a dozen merges ago."""
BASELINE_METRICS = ("cpu_p10", "wall_p50")
"""What "the median run" is the median of, per scenario: CPU time p10 when every candidate recorded it
(what ``compare`` judges), else wall p50."""


@dataclass(frozen=True)
class Added:
    label: str
    run_id: str
    values: int
    new: bool  # False: the run was already in the store (adding it again changed nothing)


def record_run(location: str, run: BenchmarkRun, label: str, provenance: Provenance) -> Added:
    """Append one run to the store at ``location`` (one transaction; a run already there is left alone)."""
    values = measurements(run)
    record = run_record(run, label, provenance)  # the label it is stored under (a server, not a run id)
    with opened(location) as store:
        new = store.add(record, values, encode_run(run))
    return Added(record.label, run.run_id, len(values), new)


def record_file(location: str, path: str | Path, provenance: Provenance) -> tuple[Added, ...]:
    """Every run in a result file chatbench wrote (bench-run.json, bench.json, signoff.json, rehearsal.json)."""
    rehearsal = _rehearsal_document(Path(path))
    if rehearsal is not None:
        record, values = rehearsal_rows(rehearsal, provenance, str(path))
        with opened(location) as store:  # no document: a rehearsal is never a baseline, nothing reads it back
            new = store.add(record, values)
        return (Added(record.label, record.run_id, len(values), new),)
    return tuple(record_run(location, run, label, provenance) for label, run in read_runs(path))


def _rehearsal_document(path: Path) -> dict[str, object] | None:
    """The document when ``path`` is a ``rehearsal.json``; None for anything else (``read_runs`` judges it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if is_rehearsal_document(data) else None


def is_history_baseline(spec: str) -> bool:
    """``--baseline history:BRANCH`` rather than a result file."""
    return spec.startswith(BASELINE_PREFIX)


@dataclass(frozen=True)
class BaselineRun:
    """The run of one server label chosen as the baseline, and what it was chosen from."""

    label: str
    run: BenchmarkRun
    commit: str
    recorded_at: str
    candidates: int  # runs of this label with a stored document it is the median of

    def describe(self) -> str:
        commit = self.commit[:10] or "unknown commit"
        return (f"{self.label}: run {self.run.run_id} ({commit}, {self.recorded_at}), the median of the last "
                f"{self.candidates}")


@dataclass(frozen=True)
class HistoryBaseline:
    """The last runs of a branch (of the sign-off's profile, benchmark runs only), per (scenario, metric), and the
    median run of each server label among them: what ``--baseline history:BRANCH`` judges against.
    ``branch_rows``: every stored run of the branch, the series ``changes_on_run`` extends with the current run."""

    branch: str
    runs: int
    rows: tuple[StoredValue, ...]
    chosen: tuple[BaselineRun, ...] = ()
    store: str = ""
    branch_rows: tuple[StoredValue, ...] = ()

    def series(self, scenario: str, metric: str) -> list[float]:
        return [r.measurement.value for r in self.rows
                if r.measurement.scenario == scenario and r.measurement.metric == metric]

    def pairs(self) -> tuple[tuple[str, BenchmarkRun], ...]:
        """(label, run) as a baseline file gives them (``chatbench.reports.inputs.read_runs``)."""
        return tuple((c.label, c.run) for c in self.chosen)

    def describe(self) -> str:
        return (f"{BASELINE_PREFIX}{self.branch} in {self.store}: "
                + "; ".join(c.describe() for c in self.chosen))


def baseline_from_history(location: str, spec: str, *, runs: int = BASELINE_RUNS,
                          profile: str | None = None) -> HistoryBaseline:
    """``history:BRANCH`` -> the last ``runs`` runs recorded on BRANCH per server label (of ``profile`` when
    given), and the median one of each label; refused in one line when there is none."""
    branch = spec.removeprefix(BASELINE_PREFIX) or "main"
    with opened(location, create=False) as store:
        name = redact(store.name)
        rows = [r for r in store.values(branch=branch) if r.run.kind != REHEARSAL_KIND]  # never a baseline
        if not rows:
            raise ChatbenchError(f"--baseline {spec}: the history store {name} has no run on branch {branch!r}; "
                                 "add runs with --history, or give a branch it has")
        if profile is not None:
            profiles = sorted({r.run.profile for r in rows})
            rows = [r for r in rows if r.run.profile == profile]
            if not rows:
                raise ChatbenchError(f"--baseline {spec}: branch {branch!r} in {name} has runs of profile "
                                     f"{', '.join(profiles)}, none of {profile}; sign off with --profile "
                                     f"{profiles[0]}, or record {profile} runs first")
        labels: dict[str, list[str]] = {}
        for row in rows:
            keys = labels.setdefault(row.run.label, [])
            if row.run.run_key not in keys:
                keys.append(row.run.run_key)
        kept = {key for keys in labels.values() for key in keys[-runs:]}
        documents = store.documents(sorted(kept))
    every, rows = tuple(rows), [r for r in rows if r.run.run_key in kept]
    chosen = []
    for label, keys in labels.items():
        candidates = [k for k in keys[-runs:] if k in documents]
        if not candidates:
            continue
        key = median_run(rows, candidates)
        record = next(r.run for r in rows if r.run.run_key == key)
        chosen.append(BaselineRun(label, decode_run(documents[key]), record.commit, record.recorded_at,
                                  len(candidates)))
    if not chosen:
        raise ChatbenchError(f"--baseline {spec}: the runs on branch {branch!r} in {name} were added by an older "
                             "chatbench, without their result document; add new runs with --history (or "
                             "`history add` their result files again into a new store)")
    return HistoryBaseline(branch, len(kept), tuple(rows), tuple(chosen), name, every)


DETECT_MIN_RUNS = 5
"""Earlier runs a series needs before the detector judges the current run against it: with fewer, the
level before is itself a guess (and the detector's load window is 5 runs)."""


def changes_on_run(rows: Sequence[StoredValue], run: BenchmarkRun, label: str, *, min_change: float,
                   scenarios: Sequence[str] | None = None) -> tuple[ChangePoint, ...]:
    """The detector's change points that ``run`` makes appear (``series.appeared``) when it is added after ``rows`` (a
    branch's stored runs): in the series of its server label, profile and machine, on the latency a comparison
    judges (``BASELINE_METRICS``: CPU time p10, else wall p50), upwards (slower) by at least ``min_change``.
    ``scenarios``: only these (None: every scenario of the run). Nothing is written to the store."""
    record = run_record(run, label, Provenance("", ""))
    mine = [v for v in measurements(run) if scenarios is None or v.scenario in scenarios]
    judged: dict[str, str] = {}
    for metric in reversed(BASELINE_METRICS):  # the preferred metric last: it overrides
        judged.update({v.scenario: metric for v in mine if v.metric == metric})
    same = [r for r in rows if (r.run.label, r.run.profile, r.run.machine) == (record.label, record.profile,
                                                                               machine_fingerprint(run))
            and r.run.run_key != record.run_key and judged.get(r.measurement.scenario) is not None]
    position = max((r.position for r in rows), default=0) + 1
    current = [StoredValue(record, v, position) for v in mine if v.scenario in judged]
    found = []
    for series in build_series([*same, *current]):
        key = series.key
        if (judged.get(key.scenario) != key.metric or series.points[-1].run.run_key != record.run_key
                or len(series.points) - 1 < DETECT_MIN_RUNS):
            continue
        # the change points this run made appear (``appeared``): a step is found a few runs after it began
        found += [change for change in appeared(series) if change.change >= min_change]
    return tuple(found)


def median_run(rows: Sequence[StoredValue], candidates: Sequence[str]) -> str:
    """The candidate run closest to the per-scenario medians: for every scenario, the median of the
    candidates' ``BASELINE_METRICS`` value; a run's distance is the median over scenarios of
    ``|ln(value / median)|``; the smallest wins, the latest on a tie. One busy-runner outlier is never
    picked, and the run is a real one (raw samples, noise probes and all) for the comparison."""
    wanted = set(candidates)
    values: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        m = row.measurement
        if row.run.run_key in wanted and m.metric in BASELINE_METRICS and m.value > 0:
            values.setdefault((m.scenario, m.metric), {})[row.run.run_key] = m.value
    per_scenario: dict[str, dict[str, float]] = {}
    for metric in reversed(BASELINE_METRICS):  # the preferred metric last: it overrides
        for (scenario, name), by_run in values.items():
            if name == metric and len(by_run) == len(wanted):
                per_scenario[scenario] = by_run
    distances: dict[str, list[float]] = {key: [] for key in candidates}
    for by_run in per_scenario.values():
        middle = statistics.median(by_run.values())
        for key, value in by_run.items():
            distances[key].append(abs(math.log(value / middle)))
    order = {key: i for i, key in enumerate(candidates)}
    return min(candidates, key=lambda k: (statistics.median(distances[k]) if distances[k] else 0.0, -order[k]))
