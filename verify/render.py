"""Renderers of a ``VerificationResult``: a terminal report (rich) and JSON. Checks never render."""

from __future__ import annotations

import json
from pathlib import Path

from chatbench.verify.result import VerificationResult
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def checks_table(result: VerificationResult) -> Table:
    table = Table(title="checks", title_justify="left")
    for col in ("check", "result", "errors", "warnings", "info", "ms"):
        table.add_column(col, justify="right" if col in ("errors", "warnings", "info", "ms") else "left")
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
        table.add_column(col, overflow="fold")
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
        table.add_column(col, overflow="fold", justify="right" if col in ("custom", "generic") else "left")
    by_key: dict[tuple[str, str], dict[str, str]] = {}
    shapes: dict[tuple[str, str], str] = {}
    for p in result.plans:
        by_key.setdefault((p.scenario, p.query), {})[p.mode] = str(p.buffers)
        if p.mode == "custom":
            shapes[(p.scenario, p.query)] = p.shape
    for (scenario, query), modes in by_key.items():
        table.add_row(
            scenario, query, modes.get("custom", "-"), modes.get("generic", "-"), shapes.get((scenario, query), "")
        )
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


def render_terminal(result: VerificationResult, console: Console) -> None:
    verdict = Text("PASS", "bold green") if result.passed else Text(f"FAIL ({len(result.errors)} errors)", "bold red")
    header = Text.assemble("verify: ", verdict, f"  on {result.server.get('url')} ({result.server.get('version')})")
    notes = Text(
        f"canonical: {result.canonical_source}; scenarios: {result.params_source}"
        + ("; read-only" if result.read_only else "")
        + (f"\nbehaviour probes ran on {result.probes_site}" if result.probes_site else ""),
        "dim",
    )
    parts: list[Table | Text] = [header, notes, checks_table(result)]
    if result.findings:
        parts.append(findings_table(result))
    if result.plans:
        parts.append(plans_table(result))
    if result.curves:
        parts.append(curves_table(result))
    console.print(Group(*parts))


def render_json(result: VerificationResult) -> str:
    return json.dumps(result.to_json(), indent=2, sort_keys=False, default=str)


def write_json(result: VerificationResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_json(result) + "\n")
