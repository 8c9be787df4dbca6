"""The store in the formats other tools read: Bencher's BMF, github-action-benchmark, Apache Otava's CSV.

- ``bmf``: Bencher Metric Format, one run (the latest): ``{benchmark: {measure: {value, lower_value,
  upper_value}}}``; benchmark = ``scenario``, measure = the metric (a slug of at most 64 characters).
- ``github-action-benchmark``: the action's ``customSmallerIsBetter`` input, one run (the latest): a
  list of ``{name, unit, value, range, extra}`` (every chatbench metric is smaller-is-better).
- ``otava-csv``: the whole series for ``otava analyze`` with a CSV data source: one row per run
  (``time``, ``commit``, ``branch``, then one column per ``scenario.metric``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from chatbench.history.records import REHEARSAL_KIND, UNITS
from chatbench.history.store import StoredValue

FORMATS = ("bmf", "github-action-benchmark", "otava-csv")


def latest_run(rows: Sequence[StoredValue]) -> list[StoredValue]:
    """The latest run's rows, and beside them the latest run of the other kind (a rehearsal beside a sign-off or
    bench run, or the other way round) when it measured the same commit: its ``rehearse:*`` benchmarks are
    names of their own, and a rehearsal of an older commit is not re-reported at this one."""
    if not rows:
        return []
    last = rows[-1].run
    latest = {row.run.kind == REHEARSAL_KIND: row.run for row in rows}  # rows are in run order: the last wins
    keys = {run.run_key for run in latest.values() if run.run_key == last.run_key or run.commit == last.commit}
    return [row for row in rows if row.run.run_key in keys]


def bmf(rows: Sequence[StoredValue]) -> dict[str, dict[str, dict[str, float]]]:
    document: dict[str, dict[str, dict[str, float]]] = {}
    for row in latest_run(rows):
        value = row.measurement
        document.setdefault(value.scenario, {})[value.metric.replace("_", "-")] = {
            "value": value.value, "lower_value": value.low, "upper_value": value.high}
    return document


def github_action_benchmark(rows: Sequence[StoredValue]) -> list[dict[str, Any]]:
    entries = []
    for row in latest_run(rows):
        value = row.measurement
        entry: dict[str, Any] = {"name": f"{value.scenario} {value.metric}", "unit": UNITS.get(value.metric, ""),
                                 "value": value.value}
        if value.high > value.low:
            entry["range"] = f"{value.low:.6g} .. {value.high:.6g}"
        entry["extra"] = (f"commit {row.run.commit or 'unknown'}; {row.run.label}; profile {row.run.profile}; "
                          f"plan {value.plan_hash or 'none'}")
        entries.append(entry)
    return entries


def otava_csv(rows: Sequence[StoredValue]) -> str:
    columns: list[str] = []
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        column = f"{row.measurement.scenario}.{row.measurement.metric}"
        if column not in columns:
            columns.append(column)
        line = table.setdefault(row.run.run_key, {"time": row.run.recorded_at, "commit": row.run.commit,
                                                  "branch": row.run.branch})
        line[column] = f"{row.measurement.value:.9g}"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["time", "commit", "branch", *columns], lineterminator="\n")
    writer.writeheader()
    for line in table.values():
        writer.writerow(line)
    return buffer.getvalue()


def render(rows: Sequence[StoredValue], fmt: str) -> str:
    if fmt == "bmf":
        return json.dumps(bmf(rows), indent=1) + "\n"
    if fmt == "github-action-benchmark":
        return json.dumps(github_action_benchmark(rows), indent=1) + "\n"
    if fmt == "otava-csv":
        return otava_csv(rows)
    raise ValueError(fmt)
