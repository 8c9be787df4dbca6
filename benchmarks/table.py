"""The report of a benchmark run for people: p50/p95/p99 per scenario with the interval judged, the
target, PASS/FAIL/INCONCLUSIVE, and the noise measured.

Through ``chatbench.output``: a table where it fits the terminal's real width, one whole line per
scenario anywhere else (a CI log), every scenario name in full.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from chatbench.benchmarks.explain import LATENCY_RULE, interval_cell, noise_summary
from chatbench.benchmarks.results import BenchmarkRun, ScenarioResult
from chatbench.output import Output

_STYLE = {"PASS": "green", "FAIL": "bold red", "INCONCLUSIVE": "yellow", "NO TARGET": "yellow"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _verdict(result: ScenarioResult) -> Text:
    return Text(result.verdict + (f" ({result.attempts}x)" if result.attempts > 1 else ""), _STYLE[result.verdict])


def title(run: BenchmarkRun) -> str:
    return (f"chatbench {run.kind} {run.run_id} ({run.environment.profile}, "
            f"{run.environment.data_sizes.get('messages', '?')} messages, "
            f"PostgreSQL {run.environment.server_version}, {run.environment.backend})")


def scenarios_table(run: BenchmarkRun) -> Table:
    table = Table(title=title(run), title_justify="left")
    for name, justify in (("scenario", "left"), ("rounds", "right"), ("p50 ms", "right"),
                          ("p95 ms [interval]", "right"), ("p99 ms [interval]", "right"), ("CPU p50", "right"),
                          ("buffers", "right"), ("target p95/p99 ms", "right"), ("target buf", "right"),
                          ("verdict", "left")):
        table.add_column(name, justify=justify, no_wrap=name in ("scenario", "verdict"))  # type: ignore[arg-type]
    for result in run.scenarios:
        stats, target, cpu = result.stats, result.target, result.cpu_stats
        table.add_row(
            result.scenario, str(stats.rounds), _ms(stats.p50), interval_cell(result, "p95"),
            interval_cell(result, "p99"), _ms(cpu.p50 if cpu else None),
            "-" if result.buffers is None else str(result.buffers.total),
            "-" if target is None else f"{_ms(target.p95_ms)}/{_ms(target.p99_ms)}",
            "-" if target is None or target.buffers is None else str(target.buffers),
            _verdict(result),
        )
    return table


def scenario_line(result: ScenarioResult) -> Text:
    """One scenario on one line: verdict, the numbers judged with their intervals, and the targets."""
    stats, target, cpu = result.stats, result.target, result.cpu_stats
    parts = [f"p50 {_ms(stats.p50)} ms", *(f"{p} {interval_cell(result, p)} ms" for p in ("p95", "p99"))]
    if cpu is not None:
        parts.append(f"CPU p50 {_ms(cpu.p50)} ms")
    if result.buffers is not None:
        parts.append(f"{result.buffers.total} buffers")
    parts.append(f"{stats.rounds} rounds")
    if target is not None:
        budget = f"target p95 {_ms(target.p95_ms)} ms, p99 {_ms(target.p99_ms)} ms"
        parts.append(budget + ("" if target.buffers is None else f", {target.buffers} buffers"))
    return Text.assemble(f"{result.scenario}: ", _verdict(result), "; " + ", ".join(parts))


def render_run(run: BenchmarkRun, out: Output) -> None:
    """The run on ``out``: the scenarios, how latency was judged, the noise, depth scaling, the verdict."""
    out.table(scenarios_table(run), [title(run), *(scenario_line(r) for r in run.scenarios)])
    out.note(LATENCY_RULE)
    out.note(noise_summary(run))
    for name, curve in run.depth_scaling.items():
        line = (f"{name}: p50 over depths {list(curve.depths)} is {curve.latency.growth_class} "
                f"(+{curve.latency.growth:.0%} fitted)")
        if curve.buffer_growth is not None:
            line += f"; buffers {list(curve.buffers)} are {curve.buffer_growth.growth_class}"
        out.line(line)
    for line in run.undecided:
        out.line(f"? INCONCLUSIVE {line}", style="yellow")
    tally = f"{len(run.failures)} target(s) missed" if run.failures else ""
    if run.undecided:
        tally += (", " if tally else "") + f"{len(run.undecided)} undecided"
    out.line(f"verdict: {run.verdict}" + (f" ({tally})" if tally else ""), style=_STYLE.get(run.verdict, "bold"))
