"""The terminal table of a benchmark run: p50/p95/p99 per scenario, the target, PASS/FAIL."""

from __future__ import annotations

import io

from chatbench.benchmarks.results import BenchmarkRun
from rich.console import Console
from rich.table import Table

_STYLE = {"PASS": "green", "FAIL": "bold red", "NO TARGET": "yellow"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_table(run: BenchmarkRun, *, width: int = 130, color: bool = False) -> str:
    """The run as a text table (rich, no colour by default so it survives logs and CI)."""
    table = Table(title=f"chatbench {run.kind} {run.run_id} ({run.environment.profile}, "
                  f"{run.environment.data_sizes.get('messages', '?')} messages, "
                  f"PostgreSQL {run.environment.server_version}, {run.environment.backend})")
    for name, justify in (("scenario", "left"), ("rounds", "right"), ("p50 ms", "right"), ("p95 ms", "right"),
                          ("p99 ms", "right"), ("p99 all", "right"), ("CV", "right"), ("buffers", "right"),
                          ("target p95/p99 ms", "right"), ("target buf", "right"), ("verdict", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for result in run.scenarios:
        stats, target = result.stats, result.target
        cv = f"{stats.cv:.0%}" + (" !" if stats.unstable else "")
        judged = result.judged_ms
        table.add_row(
            result.scenario, str(stats.rounds), _ms(stats.p50), _ms(judged.get("p95", stats.p95)),
            _ms(judged.get("p99", stats.p99)), _ms(stats.p99), cv,
            "-" if result.buffers is None else str(result.buffers.total),
            "-" if target is None else f"{_ms(target.p95_ms)}/{_ms(target.p99_ms)}",
            "-" if target is None or target.buffers is None else str(target.buffers),
            f"[{_STYLE[result.verdict]}]{result.verdict}[/]",
        )
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color, highlight=False)
    console.print(table)
    console.print("p95/p99: median over consecutive batches of rounds (what targets judge; robust to bursts of "
                  "other work); p99 all: pooled over every round")
    for name, curve in run.depth_scaling.items():
        line = (f"{name}: p50 over depths {list(curve.depths)} is {curve.latency.growth_class} "
                f"(+{curve.latency.growth:.0%} fitted)")
        if curve.buffer_growth is not None:
            line += f"; buffers {list(curve.buffers)} are {curve.buffer_growth.growth_class}"
        console.print(line)
    if any(r.stats.unstable for r in run.scenarios):
        console.print("! CV >= 10%: noisy, compare with care")
    if run.machine is not None and run.machine.busy:
        loads = run.machine.per_scenario
        console.print(f"! the machine was busy while measuring (1-min load average up to {max(loads, default=0):.1f} "
                      f"on {run.environment.cpu_count} cores): tail latencies include other work")
    console.print(f"verdict: {run.verdict}" + (f" ({len(run.failures)} target(s) missed)" if run.failures else ""))
    return buffer.getvalue()
