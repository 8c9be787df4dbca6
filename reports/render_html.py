"""A self-contained single-file HTML sign-off: inline CSS, inline SVG plots, no external reference.

Opened from a CI artifact or an e-mail, it must render offline: no script, no font, no stylesheet,
no image fetched from anywhere (and no ``http(s)://`` in the file at all; the tests check it in a
real headless browser). Every text from the run is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chatbench.benchmarks.explain import LATENCY_RULE, interval_cell, noise_summary, verdict_words
from chatbench.benchmarks.results import BenchmarkRun
from chatbench.convert import to_plain
from chatbench.reports import rehearsal_html
from chatbench.reports.compare import STATUS_ORDER, Comparison, ScenarioComparison
from chatbench.reports.html_page import CSS, e
from chatbench.reports.signoff import (
    READINESS_HEADER,
    CitusRun,
    ClusterComparison,
    SeedSummary,
    ServerSummary,
    Signoff,
    TargetSignoff,
    readiness_rows,
    readiness_title,
)

_REHEARSAL_CSS = {"PASS": "PASS", "WARN": "ERROR", "FAIL": "FAIL", "ERROR": "ERROR"}


def render_signoff(signoff: Signoff) -> str:
    """The whole sign-off as one HTML document."""
    body = [_banner(signoff), _failing(signoff)]
    if signoff.multi:
        body.append(_side_by_side(signoff.targets))
    cluster = signoff.cluster_comparison()
    if cluster is not None:
        body.append(_cluster_comparison(cluster))
    elif signoff.citus is not None and signoff.citus.no_comparison:
        body.append(f"<h2>Citus cluster against a single node</h2><p class='muted'>{e(signoff.citus.no_comparison)}"
                    "</p>")
    body.append(_plots(signoff))
    for target in signoff.targets:
        body.append(_target(target, signoff.multi, signoff.citus))
    body.append(_footer(signoff))
    return _document(f"chatbench sign-off: {signoff.verdict}", "".join(body))


def render_comparison(comparison: Comparison, *, title: str = "chatbench compare") -> str:
    """A standalone comparison report (``chatbench compare --out``)."""
    verdict = {"REGRESSION": "FAIL", "COULD NOT COMPARE": "ERROR", "INCONCLUSIVE": "INCONCLUSIVE",
               "NO REGRESSION": "PASS"}[comparison.verdict]
    body = (
        f'<div class="banner {verdict}"><div class="verdict">{e(comparison.verdict)}</div>'
        f"<div>{e(title)}: current run <code>{e(comparison.current_run)}</code> against baseline "
        f"<code>{e(comparison.baseline_run)}</code></div></div>"
    )
    if comparison.failing:
        body += "<h2>Failing</h2>" + _list("failing", (item.line() for item in comparison.failing))
    if comparison.inconclusive:
        body += "<h2>Inconclusive</h2>" + _list("undecided-list", (item.line() for item in comparison.inconclusive))
    body += _comparison(comparison)
    return _document(f"{title}: {comparison.verdict}", body)


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def _banner(signoff: Signoff) -> str:
    return (
        f'<div class="banner {signoff.verdict}"><div class="verdict">{e(signoff.verdict)}</div>'
        f"<div>{e(signoff.headline())}</div></div>"
    )


def _list(css: str, lines: Iterable[str]) -> str:
    items = "".join(f"<li>{e(line)}</li>" for line in lines)
    return f'<ul class="{css}">{items}</ul>' if items else ""


def _failing(signoff: Signoff) -> str:
    lines = signoff.failing_lines()
    out = f"<h2>Failing ({len(lines)})</h2>" + _list("failing", lines) if lines else ""
    fixes = signoff.index_fix_lines()
    if fixes:
        out += (f"<h2>Proposed indexes ({len(fixes)})</h2><p class='muted'>Each built CONCURRENTLY on a copy of the "
                "seeded database and the query judged again: proposed only if its contract then passes.</p>"
                + _list("fixes", fixes))
    undecided = signoff.inconclusive_lines()
    if undecided:
        out += (
            f"<h2>Inconclusive ({len(undecided)})</h2><p class='muted'>Not failures: the noise measured on this "
            "machine hid the answer (each line names it). Rerun on a quieter machine to decide; the exit code "
            f"is 3.</p>{_list('undecided-list', undecided)}"
        )
    warnings = [f"[{t.label}] {w.line()}" if signoff.multi else w.line() for t in signoff.targets for w in t.warnings]
    if warnings:
        out += f"<details><summary>Warnings ({len(warnings)})</summary>{_list('warnings', warnings)}</details>"
    for note in signoff.notes:
        out += f'<p class="muted">{e(note)}</p>'
    return out


def _side_by_side(targets: Sequence[TargetSignoff]) -> str:
    head = "".join(f'<th class="num">{e(t.label)}</th>' for t in targets)
    verdicts = "".join(f"<td class='num {t.verdict}'>{t.verdict}</td>" for t in targets)
    seconds = "".join(f"<td class='num'>{t.seconds:.1f}</td>" for t in targets)
    rows = [f"<tr><th>verdict</th>{verdicts}</tr>", f"<tr><th>seconds</th>{seconds}</tr>"]
    names: list[str] = []
    for target in targets:
        for result in target.benchmark.scenarios if target.benchmark else ():
            if result.scenario not in names:
                names.append(result.scenario)
    for name in names:
        cells = []
        for target in targets:
            found = (
                next((s for s in target.benchmark.scenarios if s.scenario == name), None) if target.benchmark else None
            )
            cells.append(
                '<td class="num muted">–</td>'
                if found is None
                else f'<td class="num {found.verdict if found.verdict != "NO TARGET" else ""}">'
                f"{found.stats.p50:.3f} / {found.stats.p95:.3f}</td>"
            )
        rows.append(f"<tr><th><code>{e(name)}</code></th>{''.join(cells)}</tr>")
    return (
        f"<h2>Side by side</h2><p class='muted'>p50 / p95 in ms per server</p>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
    )


def _plots(signoff: Signoff) -> str:
    # lazy: matplotlib costs 0.6 s to import (-X importtime); only the HTML page draws, and every command
    # that prints a report imports this module
    from chatbench.reports import plots

    runs = [(t.label, t.benchmark) for t in signoff.targets if t.benchmark is not None]
    figures = [
        (
            "Latency by scenario vs target",
            plots.latency_vs_target(runs),
            "p50 bars with p95 and p99 marks; the red tick is the scenario's p95 target.",
        ),
        (
            "Keyset vs OFFSET by depth",
            plots.keyset_vs_offset(runs),
            "Keyset pages should stay flat with depth; OFFSET (the contrast) grows.",
        ),
        (
            "Scaling by data size",
            plots.scaling_by_size([p for t in signoff.targets for p in t.scaling]),
            "p50 of key scenarios measured on databases of different sizes.",
        ),
    ]
    figures += [
        (
            f"Latency distributions{f' ({label})' if signoff.multi else ''}",
            plots.distributions(run, label),
            "Violin of every raw sample per scenario.",
        )
        for label, run in runs
    ]
    out = ["<h2>Plots</h2>"]
    for title, svg, caption in figures:
        content = svg if svg is not None else '<p class="muted">No data for this plot in this run.</p>'
        out.append(f"<figure><h3>{e(title)}</h3>{content}<figcaption>{e(caption)}</figcaption></figure>")
    return "".join(out)


def _target(target: TargetSignoff, multi: bool, citus: CitusRun | None = None) -> str:
    title = f"{target.label}: {target.verdict}" if multi else f"Evidence: {target.label}"
    out = [f'<h2 class="{target.verdict if multi else ""}">{e(title)}</h2>']
    if target.error:
        out.append(f'<p class="error">Stopped early: {e(target.error)}</p>')
    out.append(_stages(target))
    if target.migration is not None:
        rehearsal = target.migration
        out.append(f"<h3>Migration rehearsal: <span class='{_REHEARSAL_CSS.get(rehearsal.verdict, '')}'>"
                   f"{e(rehearsal.verdict)}</span></h3><p>{e(rehearsal.headline())}</p>"
                   + rehearsal_html.section(rehearsal, level=4))
    if target.benchmark is not None:
        out.append(_benchmarks(target.benchmark))
    if target.checks:
        out.append(_checks(target))
    out.append(_readiness(target, citus))
    if target.seed is not None:
        out.append(_mapping_table("Data", _seed_rows(target.seed)))
    if target.comparison is not None:
        out.append("<h3>Against the baseline</h3>" + _comparison(target.comparison))
    out.append(_mapping_table("Server", _server_rows(target.server)))
    if target.benchmark is not None:
        out.append(_environment(target.benchmark))
    return "".join(out)


def _rows_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _readiness(target: TargetSignoff, citus: CitusRun | None) -> str:
    rows = readiness_rows(target)
    if not rows:
        return ""
    return f"<h3>{e(readiness_title(target, citus))}</h3>" + _rows_table(READINESS_HEADER, rows)


def _cluster_comparison(cluster: ClusterComparison) -> str:
    distributed = f" (distributed {cluster.distribution})" if cluster.distribution else ""
    return (f"<h2>Citus cluster against a single node</h2><p class='muted'>{e(cluster.cluster_label + distributed)} "
            "against "
            f"{e(cluster.single_label)}: the same rows, seeded in this run; p50/p95 from each server's benchmarks, "
            "buffers of one execution (every shard's counted on the cluster)</p>"
            + _rows_table(ClusterComparison.HEADER, cluster.rows()))


def _stages(target: TargetSignoff) -> str:
    rows = "".join(
        f'<tr><td>{e(s.stage)}</td><td class="{s.status}">{e(s.status)}</td>'
        f'<td class="num">{s.seconds:.2f}</td><td>{e(s.detail)}</td></tr>'
        for s in target.stages
    )
    return (
        "<h3>Stages</h3><table><tr><th>stage</th><th>status</th><th class='num'>seconds</th><th>detail</th></tr>"
        f"{rows}<tr><th>total</th><th></th><th class='num'>{target.seconds:.2f}</th><th></th></tr></table>"
    )


def _benchmarks(run: BenchmarkRun) -> str:
    rows = []
    for s in run.scenarios:
        target = s.target
        buffers = "–" if s.buffers is None else str(s.buffers.total)
        if target is not None and target.buffers is not None:
            buffers += f" / {target.buffers}"
        flag = ' <span class="tag" title="CV ≥ 10%">unstable</span>' if s.stats.unstable else ""
        cpu = s.cpu_stats
        budgets = "".join(
            f"<td class='num'>{e(interval_cell(s, stat))}</td><td class='num'>{_opt(budget)}</td>"
            for stat, budget in (("p95", target.p95_ms if target else None), ("p99", target.p99_ms if target else None))
        )
        rows.append(
            f"<tr><td><code>{e(s.scenario)}</code>{flag}<br><span class='muted'>{e(s.query)}</span></td>"
            f"<td class='num'>{s.stats.p50:.3f}</td>{budgets}"
            f"<td class='num'>{_opt(cpu.p50 if cpu else None)}</td>"
            f"<td class='num'>{buffers}</td><td class='num'>{s.stats.rounds}</td>"
            f"<td class='{s.verdict.replace(' ', '-')}'>{e(verdict_words(s))}</td></tr>"
        )
    table = (
        "<h3>Benchmarks vs targets</h3><table><tr><th>scenario</th><th class='num'>p50 ms</th>"
        "<th class='num'>p95 ms [interval]</th><th class='num'>target p95</th>"
        "<th class='num'>p99 ms [interval]</th><th class='num'>target p99</th><th class='num'>CPU p50 ms</th>"
        "<th class='num'>buffers</th><th class='num'>rounds</th><th>verdict</th></tr>" + "".join(rows) + "</table>"
        f"<p class='muted'>{e(LATENCY_RULE)}</p><p>{e(noise_summary(run))}</p>"
    )
    if run.load is not None:
        load = run.load
        ops = "".join(
            f"<tr><td><code>{e(op.operation)}</code></td><td class='num'>{op.count}</td>"
            + "".join(
                f"<td class='num'>{op.percentiles_ms.get(k, float('nan')):.3f}</td>" for k in ("p50", "p95", "p99")
            )
            + f"<td class='num'>{op.errors}</td></tr>"
            for op in (*load.operations, load.overall)
        )
        table += (
            f"<h3>Load</h3><p>{load.clients} clients, {e(load.mode)} loop, {load.throughput_per_s:.0f} ops/s, "
            f"{load.errors} errors in {load.total}"
            f"{', corrected for coordinated omission' if load.corrected_for_coordinated_omission else ''}.</p>"
            "<table><tr><th>operation</th><th class='num'>count</th><th class='num'>p50 ms</th>"
            "<th class='num'>p95 ms</th><th class='num'>p99 ms</th><th class='num'>errors</th></tr>"
            f"{ops}</table>"
            + "".join(f"<p><code>{e(name)}</code>: {e(why)}; left out of the mix.</p>"
                      for name, why in load.not_measured.items())
        )
    return table


def _checks(target: TargetSignoff) -> str:
    shown = [c for c in target.checks if not c.passed]
    passed = len(target.checks) - len(shown)
    css = {"failed": "failed", "inconclusive": "inconclusive"}
    rows = "".join(
        f"<tr><td>{e(c.stage)}</td><td class='{css.get(c.outcome, 'skipped') if c.severity == 'error' else 'skipped'}'>"
        f"{e('inconclusive' if c.undecided else 'skipped' if c.outcome == 'skipped' else c.severity)}</td>"
        f"<td><code>{e(c.name)}</code></td><td>{e(c.message)}</td></tr>"
        for c in shown
    )
    table = (
        (f"<table><tr><th>stage</th><th>severity</th><th>object</th><th>finding</th></tr>{rows}</table>")
        if rows
        else ""
    )
    return (f"<h3>Checks</h3><p>{passed} passed, {len(shown)} not passed (failures, undecided items, warnings and "
            f"items skipped by design below).</p>{table}")


def _comparison(comparison: Comparison) -> str:
    out = []
    if comparison.environment:
        items = "".join(
            f"<li>{'<b>' if d.decisive else ''}{e(d.describe())}{'</b>' if d.decisive else ''}</li>"
            for d in comparison.environment
        )
        out.append(f'<div class="warnings env"><b>Environment differs</b><ul>{items}</ul></div>')
    out.append(f"<p>{e(comparison.conclusion())}</p>")
    rows = "".join(_comparison_row(item) for item in sorted(comparison.all_items, key=_status_rank))
    out.append(
        "<table><tr><th>status</th><th>scenario</th><th class='num'>p10 (judged)</th><th class='num'>p50</th>"
        "<th class='num'>p95</th><th class='num'>p-value</th><th>reason</th></tr>" + rows + "</table>"
    )
    for item in comparison.all_items:
        if item.plan_change is not None:
            plan = item.plan_change
            out.append(
                f"<details open><summary>Plan of <code>{e(item.scenario)}</code> changed: "
                f"{e(plan.baseline_shape)} → {e(plan.current_shape)}</summary><div class='grid'>"
                f"<div><b>baseline</b><pre>{e(plan.baseline_plan)}</pre></div>"
                f"<div><b>current</b><pre>{e(plan.current_plan)}</pre></div></div></details>"
            )
    out += [f'<p class="muted">{e(note)}</p>' for note in comparison.notes]
    return "".join(out)


def _status_rank(item: ScenarioComparison) -> int:
    return STATUS_ORDER.index(item.status)


def _opt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _comparison_row(item: ScenarioComparison) -> str:
    def cell(stat: str) -> str:
        change = item.change(stat)
        if change is None:
            return "<td class='num muted'>–</td>"
        return (
            f"<td class='num' title='{change.baseline_ms:.4f} → {change.current_ms:.4f} ms'>{change.change:+.1%}"
            f"<br><span class='muted'>[{change.ci_low - 1:+.1%}, {change.ci_high - 1:+.1%}]</span></td>"
        )

    p = "–" if item.test is None else f"{item.test.p_value:.2g}"
    return (
        f"<tr><td class='{item.status}'>{e(item.status)}</td><td><code>{e(item.scenario)}</code></td>"
        f"{cell('p10')}{cell('p50')}{cell('p95')}<td class='num'>{p}</td><td>{e(item.reason)}</td></tr>"
    )


def _seed_rows(seed: SeedSummary) -> list[tuple[str, Any]]:
    return [
        ("profile", seed.profile),
        ("counts", seed.counts),
        ("order", seed.order),
        ("created_at_correlation", seed.created_at_correlation),
        ("from_cache", seed.from_cache),
        ("checksum", seed.checksum),
        ("timings", seed.timings),
        ("seed", seed.seed),
    ]


def _server_rows(server: ServerSummary) -> list[tuple[str, Any]]:
    data = to_plain(server)
    rows = [(k, v) for k, v in data.items() if k != "settings"]
    if data.get("settings"):
        rows.append(("settings", data["settings"]))
    return rows


def _environment(run: BenchmarkRun) -> str:
    env = to_plain(run.environment)
    return _mapping_table("Environment fingerprint", [(k, v) for k, v in env.items() if k != "spec"], collapsed=True)


def _mapping_table(title: str, rows: Sequence[tuple[str, Any]], *, collapsed: bool = False) -> str:
    cells = "".join(f"<tr><th>{e(k)}</th><td>{_value(v)}</td></tr>" for k, v in rows)
    table = f"<table>{cells}</table>"
    if collapsed:
        return f"<details><summary><b>{e(title)}</b></summary>{table}</details>"
    return f"<h3>{e(title)}</h3>{table}"


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{e(k)}={e(_flat(v))}" for k, v in value.items()) or "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return e(_flat(value))


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _footer(signoff: Signoff) -> str:
    parts = [
        f"schema {signoff.schema_fingerprint} ({signoff.schema_source})",
        f"profile {signoff.profile}",
        f"chatbench {signoff.chatbench_version}",
        signoff.created_at,
    ]
    if signoff.baseline:
        parts.append(f"baseline {signoff.baseline}")
    if signoff.command:
        parts.append(f"command: {signoff.command}")
    return f"<footer>{e(' · '.join(parts))}</footer>"
