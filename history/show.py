"""What ``history show`` prints and writes: a table of the latest values with their trend, and an HTML
page with one trend plot per query (value, interval band, change points, plan changes marked).

The table goes through ``chatbench.output`` like every report: rich on a terminal, one whole line per
series in a log or a pipe. The page is one self-contained file (inline SVG, inline CSS), like the
sign-off's report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from chatbench.files import write_atomically
from chatbench.history.records import UNITS
from chatbench.history.series import ChangePoint, Series
from chatbench.output import Output
from chatbench.reports.html_page import CSS, e

PLOTTED_METRICS = ("cpu_p10", "wall_p50", "wall_p95")
PLAN_COLOR, CHANGE_COLOR = "#7c3aed", "#dc2626"


def _trend(series: Series) -> str:
    values = series.values()
    if len(values) < 2:
        return "first run"
    earlier = values[:-1][-10:]
    mean = sum(earlier) / len(earlier)
    return f"{values[-1] / mean - 1:+.1%} vs mean of {len(earlier)} before" if mean else "n/a"


def show_table(all_series: Sequence[Series], changes: Sequence[ChangePoint], out: Output) -> None:
    by_key: dict[object, list[ChangePoint]] = {}
    for change in changes:
        by_key.setdefault(change.series, []).append(change)
    table = Table(title="chatbench history", show_lines=False)
    for column in ("scenario", "metric", "runs", "latest", "interval", "trend", "change points"):
        table.add_column(column, justify="right" if column in ("runs", "latest") else "left")
    lines = []
    for series in all_series:
        last = series.points[-1].measurement
        unit = UNITS.get(series.key.metric, "")
        found = by_key.get(series.key, [])
        marks = ", ".join(f"run {c.index + 1} {c.change:+.1%}" for c in found) or "none"
        interval = f"{last.low:.4g}–{last.high:.4g}" if last.high > last.low else "exact"
        trend = _trend(series)
        table.add_row(series.key.scenario, series.key.metric, str(len(series.points)), f"{last.value:.4g} {unit}",
                      interval, trend, marks)
        lines.append(f"{series.key.scenario} {series.key.metric}: {len(series.points)} runs, latest "
                     f"{last.value:.4g} {unit} [{interval}], {trend}, change points: {marks} "
                     f"({series.key.label}, {series.key.profile}, machine {series.key.machine})")
    out.table(table, lines)
    for change in changes:
        out.line(change.line())


def trend_svg(series: Series, changes: Sequence[ChangePoint]) -> str:
    x = list(range(1, len(series.points) + 1))
    values = series.values()
    low = [p.measurement.low for p in series.points]
    high = [p.measurement.high for p in series.points]
    # lazy: matplotlib costs 0.6 s to import (-X importtime); only the HTML page draws, and every command
    # that prints a report imports this module
    import matplotlib.pyplot as plt

    from chatbench.reports.plots import PALETTE, to_svg

    fig, ax = plt.subplots(figsize=(9.0, 2.6), dpi=100)
    ax.fill_between(x, low, high, color=PALETTE[0], alpha=0.15, linewidth=0, label="interval")
    ax.plot(x, values, marker="o", markersize=2.5, linewidth=1.2, color=PALETTE[0], label="value")
    for change in changes:
        ax.axvline(change.index + 0.5, color=CHANGE_COLOR, linestyle="--", linewidth=1.2)
        ax.annotate(f"{change.change:+.1%}", (change.index + 0.6, max(high)), color=CHANGE_COLOR, fontsize=8,
                    va="top")
    plan_changes = [i + 1 for i in range(1, len(series.points))
                    if series.points[i].measurement.plan_hash != series.points[i - 1].measurement.plan_hash]
    if plan_changes:
        ax.scatter(plan_changes, [values[i - 1] for i in plan_changes], marker="^", s=60, color=PLAN_COLOR,
                   zorder=3, label="plan changed")
    ax.set_xlabel("run (oldest first)")
    ax.set_ylabel(f"{series.key.metric} ({UNITS.get(series.key.metric, '')})")
    ax.set_title(f"{series.key.scenario}: {series.key.metric}", fontsize=10, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper left", fontsize=7, frameon=False, ncols=3)
    return to_svg(fig, f"history {series.key.scenario} {series.key.metric}")


def write_html(all_series: Sequence[Series], changes: Sequence[ChangePoint], path: Path, *, store: str) -> Path:
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>chatbench history</title>"
             f"<style>{CSS}</style></head><body><h1>chatbench history</h1>"
             f"<p class=muted>store {e(store)}; dashed red lines: change points (E-divisive means, t-test); purple "
             "triangles: the query's plan changed; band: each value's interval</p>"]
    if changes:
        parts.append("<h2>Change points</h2><ul class=failing>")
        parts += [f"<li>{e(c.line())}</li>" for c in changes]
        parts.append("</ul>")
    by_query: dict[str, list[Series]] = {}
    for series in all_series:
        if series.key.metric in PLOTTED_METRICS:
            by_query.setdefault(series.query, []).append(series)
    for query, members in by_query.items():
        parts.append(f"<h2>{e(query)}</h2>")
        for series in members:
            mine = [c for c in changes if c.series == series.key]
            parts.append(f"<figure>{trend_svg(series, mine)}<figcaption>{e(series.key.title())}, "
                         f"{len(series.points)} runs</figcaption></figure>")
    parts.append("</body></html>\n")
    return write_atomically(path, "\n".join(parts))
