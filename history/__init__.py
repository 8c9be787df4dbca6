"""Performance history: every run kept in a store, change points found across runs, exports for other tools.

Why its own layer, between the top and ``reports``: it reads the result files the way ``compare`` does
(``chatbench.reports.inputs``) and draws as the reports do (``chatbench.reports.plots``), and the
sign-off, bench and rehearse commands (the top) record into it; ``reports`` renders one run or one
comparison and never needs the history, so nothing below imports it.

Runs enter the store through ``chatbench history add RESULT.json``. The sign-off, bench and rehearse
commands do not record into it yet, and ``--baseline history:BRANCH`` is not an option yet: the one call
each would make is here (``record_file`` / ``record_run`` after a run wrote its result,
``baseline_from_history`` for the baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.history.records import Provenance, measurements, run_record
from chatbench.history.store import StoredValue, opened

__all__ = ["Added", "HistoryBaseline", "baseline_from_history", "record_file", "record_run"]

BASELINE_PREFIX = "history:"
BASELINE_RUNS = 10
"""Runs of the branch a ``history:BRANCH`` baseline takes (the last N)."""


@dataclass(frozen=True)
class Added:
    label: str
    run_id: str
    values: int
    new: bool  # False: the run was already in the store (adding it again changed nothing)


def record_run(location: str, run: BenchmarkRun, label: str, provenance: Provenance) -> Added:
    """Append one run to the store at ``location`` (one transaction; a run already there is left alone)."""
    values = measurements(run)
    with opened(location) as store:
        new = store.add(run_record(run, label, provenance), values)
    return Added(label, run.run_id, len(values), new)


def record_file(location: str, path: str | Path, provenance: Provenance) -> tuple[Added, ...]:
    """Every run in a result file chatbench wrote (bench-run.json, bench.json, signoff.json)."""
    from chatbench.reports.inputs import read_runs

    return tuple(record_run(location, run, label, provenance) for label, run in read_runs(path))


@dataclass(frozen=True)
class HistoryBaseline:
    """The last runs of a branch, per (scenario, metric): what ``--baseline history:BRANCH`` judges against."""

    branch: str
    runs: int
    rows: tuple[StoredValue, ...]

    def series(self, scenario: str, metric: str) -> list[float]:
        return [r.measurement.value for r in self.rows
                if r.measurement.scenario == scenario and r.measurement.metric == metric]


def baseline_from_history(location: str, spec: str, *, runs: int = BASELINE_RUNS) -> HistoryBaseline:
    """``history:BRANCH`` -> the last ``runs`` runs recorded on BRANCH (refused in one line when none)."""
    from chatbench.errors import ChatbenchError

    branch = spec.removeprefix(BASELINE_PREFIX) or "main"
    with opened(location) as store:
        rows = store.values(branch=branch)
    kept = set(list(dict.fromkeys(r.run.run_key for r in rows))[-runs:])
    if not kept:
        raise ChatbenchError(f"--baseline {spec}: the history store has no run on branch {branch!r}; add runs with "
                             "--history, or give a branch it has")
    return HistoryBaseline(branch, len(kept), tuple(r for r in rows if r.run.run_key in kept))
