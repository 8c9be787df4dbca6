"""Renderers of a ``VerificationResult``: a report for people (``chatbench.output``: tables on a terminal,
one whole line per check, finding, plan and curve in a log) and JSON. Checks never render."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from chatbench.files import write_atomically
from chatbench.output import Output
from chatbench.verify.result import CheckOutcome, GrowthCurve, PlanSummary, VerificationResult

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def checks_table(result: VerificationResult) -> Table:
    table = Table(title="checks", title_justify="left")
    for col in ("check", "result", "errors", "warnings", "info", "ms"):
        table.add_column(col, justify="right" if col in ("errors", "warnings", "info", "ms") else "left",
                         no_wrap=col == "check")
    for c in result.checks:
        table.add_row(
            c.name,
            Text("PASS", "green") if c.passed else Text("FAIL", "bold red"),
            str(c.errors),
            str(c.warnings),
            str(c.infos),
            f"{c.seconds * 1000:.1f}",
        )
    return table


def findings_table(result: VerificationResult, *, include_info: bool = True) -> Table:
    table = Table(title="findings", title_justify="left", show_lines=False)
    for col in ("severity", "check", "object", "query / scenario", "expected", "found", "evidence"):
        table.add_column(col)
    for f in result.findings:
        if f.severity == "info" and not include_info:
            continue
        where = (f.query or "") + (f"\n{f.scenario}" if f.scenario else "")
        table.add_row(
            Text(f.severity, _STYLE[f.severity]), f"{f.check}/{f.kind}", f.object, where, f.expected, f.actual, f.detail
        )
    return table


def plans_table(result: VerificationResult) -> Table:
    table = Table(title="plans (shared buffers; custom / generic)", title_justify="left")
    for col in ("scenario", "query", "custom", "generic", "custom plan"):
        table.add_column(col, justify="right" if col in ("custom", "generic") else "left")
    for (scenario, query), modes in _plans_by_key(result).items():
        table.add_row(scenario, query, *(str(modes[m].buffers) if m in modes else "-" for m in ("custom", "generic")),
                      modes["custom"].shape if "custom" in modes else "")
    return table


def curves_table(result: VerificationResult) -> Table:
    table = Table(
        title="growth: buffers by depth (keyset must stay flat; OFFSET is the contrast)", title_justify="left"
    )
    table.add_column("curve")
    table.add_column("mode")
    table.add_column("depth:buffers")
    for c in result.curves:
        table.add_row(f"{c.curve} ({c.query})", c.mode, "  ".join(f"{d}:{b}" for d, b in c.points))
    return table


def check_line(check: CheckOutcome) -> Text:
    verdict = Text("PASS", "green") if check.passed else Text("FAIL", "bold red")
    return Text.assemble(f"check {check.name}: ", verdict, f" ({check.errors} errors, {check.warnings} warnings, "
                         f"{check.infos} info; {check.seconds * 1000:.1f} ms)")


def curve_line(curve: GrowthCurve) -> str:
    return (f"growth {curve.curve} ({curve.query}), {curve.mode} plan: buffers by depth "
            + "  ".join(f"{d}:{b}" for d, b in curve.points))


def plan_lines(result: VerificationResult) -> list[str]:
    """One line per scenario and query: buffers of the custom and generic plan, and the custom plan."""
    lines = []
    for (scenario, query), modes in _plans_by_key(result).items():
        buffers = ", ".join(f"{mode} {modes[mode].buffers} buffers" for mode in ("custom", "generic") if mode in modes)
        shape = f"; custom plan {modes['custom'].shape}" if "custom" in modes else ""
        lines.append(f"plan {scenario} {query}: {buffers}{shape}")
    return lines


def _plans_by_key(result: VerificationResult) -> dict[tuple[str, str], dict[str, PlanSummary]]:
    by_key: dict[tuple[str, str], dict[str, PlanSummary]] = {}
    for p in result.plans:
        by_key.setdefault((p.scenario, p.query), {})[p.mode] = p
    return by_key


def render_terminal(result: VerificationResult, out: Output) -> None:
    """The report for people: tables where they fit a terminal, one whole line per item otherwise."""
    verdict = Text("PASS", "bold green") if result.passed else Text(f"FAIL ({len(result.errors)} errors)", "bold red")
    out.line(Text.assemble("verify: ", verdict, f" on {result.server.get('url')} ({result.server.get('version')})"))
    out.note(f"canonical: {result.canonical_source}; scenarios: {result.params_source}"
             + ("; read-only" if result.read_only else ""))
    if result.probes_site:
        out.note(f"behaviour probes ran on {result.probes_site}")
    out.table(checks_table(result), [check_line(c) for c in result.checks])
    if result.findings:
        out.table(findings_table(result), [Text(f.message(), _STYLE[f.severity]) for f in result.findings])
    if result.plans:
        out.table(plans_table(result), plan_lines(result))
    if result.curves:
        out.table(curves_table(result), [curve_line(c) for c in result.curves])


def render_json(result: VerificationResult) -> str:
    return json.dumps(result.to_json(), indent=2, sort_keys=False, default=str)


def write_json(result: VerificationResult, path: Path) -> None:
    """Whole or not at all: a CI step reading it after an interrupted run finds no truncated JSON."""
    write_atomically(path, render_json(result) + "\n", what="--json")
