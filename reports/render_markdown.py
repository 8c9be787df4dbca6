"""Markdown for a PR comment and ``$GITHUB_STEP_SUMMARY``: verdict first, failing items, then evidence.

GitHub caps a comment at 65,536 characters; ``render_signoff`` stays under ``MAX_CHARS`` by
shortening the evidence (never the verdict or the failing list) and saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from chatbench.benchmarks.explain import LATENCY_RULE, interval_cell, noise_summary, verdict_words
from chatbench.benchmarks.results import BenchmarkRun, ScenarioResult
from chatbench.reports import rehearsal_markdown
from chatbench.reports.compare import STATUS_ORDER, Comparison, ScenarioComparison
from chatbench.reports.signoff import (
    READINESS_HEADER,
    CheckItem,
    CitusRun,
    ClusterComparison,
    Signoff,
    TargetSignoff,
    readiness_rows,
    readiness_title,
)

MAX_CHARS = 60_000
_ICON = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "🟡", "ERROR": "⚠️"}
_STATUS_ICON = {
    "regressed": "🔴",
    "error": "⚠️",
    "inconclusive": "🟡",
    "improved": "🟢",
    "unchanged": "⚪",
    "new": "🆕",
    "missing": "❔",
    "changed": "🔁",
}


def render_signoff(signoff: Signoff, *, max_chars: int = MAX_CHARS) -> str:
    """The whole sign-off as Markdown, at most ``max_chars`` characters."""
    head = _signoff_head(signoff, max_chars)
    evidence = [_target_evidence(t, signoff.multi, signoff.citus) for t in signoff.targets]
    if signoff.multi:
        evidence.insert(0, _side_by_side(signoff.targets))
    cluster = signoff.cluster_comparison()
    if cluster is not None:
        evidence.insert(1, _cluster_comparison(cluster))
    elif signoff.citus is not None and signoff.citus.no_comparison:
        evidence.insert(1, f"\n### Citus cluster against a single node\n\n{_escape(signoff.citus.no_comparison)}.\n")
    text = head + "".join(evidence) + _footer(signoff)
    if len(text) <= max_chars:
        return text
    # Too long for a PR comment: keep the verdict and failing list whole, cut the evidence.
    note = "\n\n_Evidence shortened to fit a PR comment; signoff.html and signoff.json hold all of it._\n"
    budget = max(0, max_chars - len(head) - len(note))
    return head + "".join(evidence)[:budget].rsplit("\n", 1)[0] + note


def _signoff_head(signoff: Signoff, max_chars: int = MAX_CHARS) -> str:
    lines = [f"## {_ICON[signoff.verdict]} chatbench sign-off: **{signoff.verdict}**", "", signoff.headline(), ""]
    failing = signoff.failing_lines()
    if failing:
        lines += [f"### Failing ({len(failing)})", ""]
        budget, shown = max_chars * 3 // 4, 0
        for line in failing:
            item = f"- {_escape(line)}"
            if budget - len(item) - 1 < 0:
                break
            lines.append(item)
            budget -= len(item) + 1
            shown += 1
        if shown < len(failing):
            lines.append(f"- … and {len(failing) - shown} more failing items (all of them in signoff.json)")
        lines.append("")
    fixes = signoff.index_fix_lines()
    if fixes:
        lines += [f"### Proposed indexes ({len(fixes)})", "",
                  "_Each built CONCURRENTLY on a copy of the seeded database and the query judged again: "
                  "proposed only if its contract then passes._", "", *[f"- {_escape(line)}" for line in fixes], ""]
    undecided = signoff.inconclusive_lines()
    if undecided:
        lines += [
            f"### Inconclusive ({len(undecided)})",
            "",
            "_Not failures: the noise measured on this machine hid the answer (each line names it). "
            "Rerun on a quieter machine to decide; the exit code is 3._",
            "",
            *[f"- {_escape(line)}" for line in undecided],
            "",
        ]
    lines += _folded("Warnings", [(t, w) for t in signoff.targets for w in t.warnings], signoff.multi)
    lines += _folded("Skipped", [(t, c) for t in signoff.targets for c in t.skipped], signoff.multi)
    for note in signoff.notes:
        lines.append(f"> {_escape(note)}")
    return "\n".join(lines) + "\n"


def _folded(title: str, items: Sequence[tuple[TargetSignoff, CheckItem]], multi: bool) -> list[str]:
    """A folded list of checks, one line each (prefixed by the server when several); nothing when empty."""
    if not items:
        return []
    return [f"<details><summary>{title} ({len(items)})</summary>\n",
            *(f"- {f'[{t.label}] ' if multi else ''}{_escape(c.line())}" for t, c in items), "", "</details>", ""]


def _footer(signoff: Signoff) -> str:
    parts = [
        f"schema `{signoff.schema_fingerprint}` ({_escape(signoff.schema_source)})",
        f"profile `{signoff.profile}`",
        f"chatbench {signoff.chatbench_version}",
        signoff.created_at,
    ]
    if signoff.baseline:
        parts.append(f"baseline `{signoff.baseline}`")
    return "\n---\n<sub>" + " · ".join(parts) + "</sub>\n"


def _side_by_side(targets: Sequence[TargetSignoff]) -> str:
    """One table, one column per server: the versions side by side."""
    header = "| scenario | " + " | ".join(_escape(t.label) for t in targets) + " |"
    rule = "|---|" + "---:|" * len(targets)
    names: list[str] = []
    for target in targets:
        for result in target.benchmark.scenarios if target.benchmark else ():
            if result.scenario not in names:
                names.append(result.scenario)
    rows = [
        f"| verdict | {' | '.join(f'{_ICON[t.verdict]} {t.verdict}' for t in targets)} |",
        f"| total seconds | {' | '.join(f'{t.seconds:.1f}' for t in targets)} |",
    ]
    for name in names:
        cells = []
        for target in targets:
            found = _find(target.benchmark, name)
            mark = {"FAIL": " ❌", "INCONCLUSIVE": " 🟡"}.get(found.verdict, "") if found is not None else ""
            cells.append("–" if found is None else f"{found.stats.p95:.3f}{mark}")
        rows.append(f"| `{name}` p95 ms | {' | '.join(cells)} |")
    return "\n### Side by side\n\n" + "\n".join([header, rule, *rows]) + "\n"


def _target_evidence(target: TargetSignoff, multi: bool, citus: CitusRun | None = None) -> str:
    title = (
        f"\n### {_ICON[target.verdict]} {_escape(target.label)}: {target.verdict}\n" if multi else "\n### Evidence\n"
    )
    server = target.server
    lines = [
        title,
        f"Server: PostgreSQL {server.version or '?'} via {server.backend}"
        f" (`{server.url or ''}`)" + (f". Stopped early: {_escape(target.error)}" if target.error else ""),
        "",
    ]
    lines += _stage_table(target)
    if target.migration is not None:
        lines += _migration(target)
    if target.benchmark is not None:
        lines += _benchmark_table(target.benchmark)
    if target.verification is not None:
        lines += _verification_summary(target)
        lines += _readiness(target, citus)
    if target.seed is not None:
        lines += _seed_summary(target)
    if target.comparison is not None:
        lines.append("#### Against the baseline\n")
        lines.append(render_comparison_body(target.comparison, heading_level=5))
    return "\n".join(lines) + "\n"


def _stage_table(target: TargetSignoff) -> list[str]:
    icon = {"ok": "✅", "failed": "❌", "inconclusive": "🟡", "error": "⚠️", "skipped": "➖"}
    rows = ["| stage | status | seconds | detail |", "|---|---|---:|---|"]
    rows += [
        f"| {s.stage} | {icon[s.status]} {s.status} | {s.seconds:.2f} | {_escape(s.detail)} |" for s in target.stages
    ]
    rows.append(f"| **total** | | **{target.seconds:.2f}** | |")
    return ["#### Stages", "", *rows, ""]


def _migration(target: TargetSignoff) -> list[str]:
    """The migration's report inside the sign-off: the same section ``rehearsal.md`` holds."""
    rehearsal = target.migration
    assert rehearsal is not None
    icon = rehearsal_markdown.ICON.get(rehearsal.verdict, "")
    return [f"#### {icon} Migration rehearsal: {rehearsal.verdict}", "", _escape(rehearsal.headline()), "",
            *rehearsal_markdown.section(rehearsal, level=5)]


def _benchmark_table(run: BenchmarkRun) -> list[str]:
    rows = [
        "| scenario | p50 ms | p95 ms [interval] | target p95 | p99 ms [interval] | target p99 | CPU p50 ms "
        "| buffers | rounds | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in run.scenarios:
        target = result.target
        cpu = result.cpu_stats
        rows.append(
            f"| `{result.scenario}` | {result.stats.p50:.3f} | {interval_cell(result, 'p95')} | "
            f"{_opt(target.p95_ms if target else None)} | {interval_cell(result, 'p99')} | "
            f"{_opt(target.p99_ms if target else None)} | {_opt(cpu.p50 if cpu else None)} | {_buffers(result)} | "
            f"{result.stats.rounds} | {_verdict_cell(result)} |"
        )
    env = run.environment
    pin = env.pinning.get("mode") or ", ".join(f"{k}={v}" for k, v in env.pinning.items())
    caption = (
        f"PostgreSQL {env.server_version}, {env.cpu_count}× {env.cpu_model}, pinning: {pin or 'none'}; "
        f"{_sizes(env.data_sizes)}"
    )
    load = [] if run.load is None else _load_table(run)
    return [
        "#### Benchmarks vs targets",
        "",
        _escape(caption),
        "",
        *rows,
        "",
        f"_{_escape(LATENCY_RULE)}_",
        "",
        _escape(noise_summary(run)),
        "",
        *load,
    ]


def _load_table(run: BenchmarkRun) -> list[str]:
    load = run.load
    assert load is not None
    rows = [
        f"Load: {load.clients} clients, {load.mode} loop, {load.throughput_per_s:.0f} ops/s, "
        f"{load.errors} errors in {load.total}"
        f"{', corrected for coordinated omission' if load.corrected_for_coordinated_omission else ''}.",
        "",
        "| operation | count | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op in (*load.operations, load.overall):
        p = op.percentiles_ms
        rows.append(
            f"| `{op.operation}` | {op.count} | {_opt(p.get('p50'))} | {_opt(p.get('p95'))} | "
            f"{_opt(p.get('p99'))} | {op.errors} |"
        )
    rows += [f"\n`{name}`: {_escape(why)}; left out of the mix." for name, why in load.not_measured.items()]
    return ["#### Load", "", *rows, ""]


def _verification_summary(target: TargetSignoff) -> list[str]:
    findings = [c for c in target.checks if c.stage in ("drift", "health", "plans") and c.outcome != "skipped"]
    by_stage: dict[str, list[int]] = {}
    for check in findings:
        counts = by_stage.setdefault(check.stage, [0, 0, 0])
        counts[0 if check.passed else (1 if check.severity == "error" else 2)] += 1
    rows = ["| check | passed | failed | warnings |", "|---|---:|---:|---:|"]
    rows += [f"| {stage} | {c[0]} | {c[1]} | {c[2]} |" for stage, c in by_stage.items()]
    return ["#### Schema verification", "", *rows, ""] if by_stage else []


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows)]


def _readiness(target: TargetSignoff, citus: CitusRun | None) -> list[str]:
    rows = readiness_rows(target)
    if not rows:
        return []
    return [f"#### {readiness_title(target, citus)}", "", *_table(READINESS_HEADER, rows), ""]


def _cluster_comparison(cluster: ClusterComparison) -> str:
    distributed = f" (distributed {cluster.distribution})" if cluster.distribution else ""
    return (f"\n### Citus cluster against a single node\n\n{_escape(cluster.cluster_label)}{distributed} against "
            f"{_escape(cluster.single_label)}: the same rows, seeded in this run; p50/p95 from each server's "
            "benchmarks, buffers of one execution (every shard's counted on the cluster).\n\n"
            + "\n".join(_table(ClusterComparison.HEADER, cluster.rows())) + "\n")


def _seed_summary(target: TargetSignoff) -> list[str]:
    seed = target.seed
    assert seed is not None
    cache = "template cache hit" if seed.from_cache else "seeded now"
    return [
        f"Data: {_sizes(seed.counts)}; {cache}; checksum `{seed.checksum[:16]}`; "
        f"order {seed.order}, created_at correlation {seed.created_at_correlation}.",
        "",
    ]


# --- comparison -----------------------------------------------------------------------------------


def render_comparison(comparison: Comparison, *, title: str = "chatbench compare") -> str:
    """A standalone comparison report (``chatbench compare``): verdict, failing lines, evidence."""
    icon = {"REGRESSION": "❌", "COULD NOT COMPARE": "⚠️", "INCONCLUSIVE": "🟡", "NO REGRESSION": "✅"}[
        comparison.verdict
    ]
    lines = [
        f"## {icon} {title}: **{comparison.verdict}**",
        "",
        f"Current run `{comparison.current_run}` against baseline `{comparison.baseline_run}`.",
        "",
    ]
    failing = comparison.failing
    if failing:
        lines += [f"### Failing ({len(failing)})", "", *[f"- {_escape(item.line())}" for item in failing], ""]
    undecided = comparison.inconclusive
    if undecided:
        lines += [
            f"### Inconclusive ({len(undecided)})",
            "",
            *[f"- {_escape(item.line())}" for item in undecided],
            "",
        ]
    return "\n".join(lines) + "\n" + render_comparison_body(comparison, heading_level=3)


def render_comparison_body(comparison: Comparison, *, heading_level: int = 3) -> str:
    h = "#" * heading_level
    lines: list[str] = []
    if comparison.environment:
        lines += [
            f"> ⚠️ **Environment differs** ({len(comparison.environment)} field"
            f"{'s' * (len(comparison.environment) != 1)}):",
            ">",
        ]
        lines += [
            f"> - {'**' if d.decisive else ''}{_escape(d.describe())}{'**' if d.decisive else ''}"
            for d in comparison.environment
        ]
        lines.append("")
    lines += [_escape(comparison.conclusion()), ""]
    t = comparison.thresholds
    lines += [
        f"{h} Scenarios",
        "",
        f"Regression = Mann-Whitney U p < {t.alpha} on the raw samples (CPU time per round when both runs "
        f"measured it, else wall time) **and** p10 (the fast, undisturbed rounds) ≥ "
        f"+{t.min_effect:.0%} with its {t.confidence:.0%} bootstrap CI above the noise measured in both runs (an "
        "effect inside that noise is inconclusive; OFFSET contrast scenarios are shown, not judged)"
        + (f" (or the whole p95 CI above +{t.min_effect:.0%})" if t.judge_tails else "")
        + f"; deterministic metrics compared exactly (rows; plan shape, shown with both plans; buffers regress at "
        f"{t.buffer_ratio:g}×); [CI] = 95% bootstrap interval.",
        "",
        "| | scenario | p10 change (judged) | p50 change | p95 change | p-value | reason |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines += [_comparison_row(item) for item in _ordered(comparison.all_items)]
    plans = [item for item in comparison.all_items if item.plan_change is not None]
    for item in plans:
        plan = item.plan_change
        assert plan is not None
        lines += [
            "",
            f"<details><summary>Plan of <code>{item.scenario}</code> changed: "
            f"{_escape(plan.baseline_shape)} → {_escape(plan.current_shape)}</summary>",
            "",
            "Baseline:",
            "",
            "```",
            plan.baseline_plan,
            "```",
            "",
            "Current:",
            "",
            "```",
            plan.current_plan,
            "```",
            "",
            "</details>",
        ]
    for note in comparison.notes:
        lines += ["", f"_{_escape(note)}_"]
    return "\n".join(lines) + "\n"


def _ordered(items: Iterable[ScenarioComparison]) -> list[ScenarioComparison]:
    return sorted(items, key=lambda item: STATUS_ORDER.index(item.status))


def _comparison_row(item: ScenarioComparison) -> str:
    def cell(stat: str) -> str:
        change = item.change(stat)
        if change is None:
            return "–"
        return f"{change.change:+.1%} [{change.ci_low - 1:+.0%}, {change.ci_high - 1:+.0%}]"

    p = (
        "–"
        if item.test is None
        else (f"{item.test.p_value:.2g}" if item.test.p_value >= 1e-4 else f"{item.test.p_value:.0e}")
    )
    return (
        f"| {_STATUS_ICON[item.status]} {item.status} | `{item.scenario}` | {cell('p10')} | {cell('p50')} | "
        f"{cell('p95')} | {p} | {_escape(item.reason)} |"
    )


# --- helpers -----------------------------------------------------------------------------------------


def _find(run: BenchmarkRun | None, name: str) -> ScenarioResult | None:
    if run is None:
        return None
    return next((s for s in run.scenarios if s.scenario == name), None)


def _verdict_cell(result: ScenarioResult) -> str:
    icon = {"FAIL": "❌ ", "INCONCLUSIVE": "🟡 ", "PASS": "✅ "}.get(result.verdict, "")
    return icon + verdict_words(result) if result.verdict != "NO TARGET" else "–"


def _buffers(result: ScenarioResult) -> str:
    if result.buffers is None:
        return "–"
    budget = result.target.buffers if result.target is not None else None
    return f"{result.buffers.total}" + (f" / {budget}" if budget is not None else "")


def _opt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _sizes(sizes: object) -> str:
    if not isinstance(sizes, Mapping) or not sizes:
        return "data sizes unknown"
    return ", ".join(f"{int(n):,} {table}" for table, n in sizes.items())


def _escape(text: str) -> str:
    """Keep table cells intact: pipes and newlines would break a Markdown table row."""
    return str(text).replace("|", "\\|").replace("\n", " ")
