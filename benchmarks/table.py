"""The terminal table of a benchmark run: p50/p95/p99 per scenario with the interval judged, the target,
PASS/FAIL/INCONCLUSIVE, and the noise measured."""

from __future__ import annotations

import io

from chatbench.benchmarks.explain import LATENCY_RULE, noise_summary
from chatbench.benchmarks.results import BenchmarkRun, ScenarioResult
from rich.console import Console
from rich.table import Table

_STYLE = {"PASS": "green", "FAIL": "bold red", "INCONCLUSIVE": "yellow", "NO TARGET": "yellow"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _judged(result: ScenarioResult, statistic: str) -> str:
    """The judged percentile and, beside it, the interval that decided (``low-high``)."""
    judgement = result.judgement(statistic)
    if judgement is None:
        return _ms(result.stats.percentile(statistic))
    return f"{judgement.value_ms:.3f} [{judgement.low_ms:.3f}-{judgement.high_ms:.3f}]"


def render_table(run: BenchmarkRun, *, width: int = 130, color: bool = False) -> str:
    """The run as a text table (rich, no colour by default so it survives logs and CI)."""
    table = Table(title=f"chatbench {run.kind} {run.run_id} ({run.environment.profile}, "
                  f"{run.environment.data_sizes.get('messages', '?')} messages, "
                  f"PostgreSQL {run.environment.server_version}, {run.environment.backend})")
    for name, justify in (("scenario", "left"), ("rounds", "right"), ("p50 ms", "right"),
                          ("p95 ms [interval]", "right"), ("p99 ms [interval]", "right"), ("CPU p50", "right"),
                          ("buffers", "right"), ("target p95/p99 ms", "right"), ("target buf", "right"),
                          ("verdict", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for result in run.scenarios:
        stats, target, cpu = result.stats, result.target, result.cpu_stats
        table.add_row(
            result.scenario, str(stats.rounds), _ms(stats.p50), _judged(result, "p95"), _judged(result, "p99"),
            _ms(cpu.p50 if cpu else None),
            "-" if result.buffers is None else str(result.buffers.total),
            "-" if target is None else f"{_ms(target.p95_ms)}/{_ms(target.p99_ms)}",
            "-" if target is None or target.buffers is None else str(target.buffers),
            f"[{_STYLE[result.verdict]}]{result.verdict}"
            + (f" ({result.attempts}x)" if result.attempts > 1 else "") + "[/]",
        )
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color, highlight=False)
    console.print(table)
    console.print(LATENCY_RULE.replace("–", "-"), soft_wrap=True)
    console.print(noise_summary(run), soft_wrap=True)
    for name, curve in run.depth_scaling.items():
        line = (f"{name}: p50 over depths {list(curve.depths)} is {curve.latency.growth_class} "
                f"(+{curve.latency.growth:.0%} fitted)")
        if curve.buffer_growth is not None:
            line += f"; buffers {list(curve.buffers)} are {curve.buffer_growth.growth_class}"
        console.print(line)
    for line in run.undecided:
        console.print(f"? INCONCLUSIVE {line}", soft_wrap=True)
    tally = f"{len(run.failures)} target(s) missed" if run.failures else ""
    if run.undecided:
        tally += (", " if tally else "") + f"{len(run.undecided)} undecided"
    console.print(f"verdict: {run.verdict}" + (f" ({tally})" if tally else ""))
    return buffer.getvalue()
