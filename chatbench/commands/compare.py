"""Compare a benchmark run with a baseline: per scenario p50/p95/p99 change with bootstrap confidence
intervals, Mann-Whitney U on the raw samples, a minimum effect size; deterministic metrics (buffers,
rows, plan shape) compared exactly; environment fingerprints compared first. Either file may be a
benchmark result JSON or a signoff.json. Exit 1 on a regression (or when a scenario could not be
compared soundly), 0 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chatbench.commands._common import console
from chatbench.settings import Settings

NAME = "compare"
HELP = "compare CURRENT.json with BASELINE.json: regressions with their statistics (exit 1 on regression)"


SETTINGS = ("out", "label", "min_effect", "alpha")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("current", type=Path, metavar="CURRENT.json")
    parser.add_argument("baseline", type=Path, metavar="BASELINE.json")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from chatbench.reports.compare import Thresholds, compare_runs
    from chatbench.reports.inputs import read_one
    from chatbench.reports.output import write_comparison
    from chatbench.reports.render_markdown import render_comparison

    _, current = read_one(args.current, label=settings.label)
    _, baseline = read_one(args.baseline, label=settings.label)
    with console.status("comparing (bootstrap and Mann-Whitney on the raw samples)"):
        comparison = compare_runs(current, baseline, Thresholds(min_effect=settings.min_effect, alpha=settings.alpha))
    print(render_comparison(comparison, title=f"chatbench compare {args.current.name} vs {args.baseline.name}"))
    if settings.out is not None:
        written = write_comparison(comparison, settings.out)
        console.print(f"[dim]wrote {', '.join(str(p) for p in written.values())}[/dim]")
    return 0 if comparison.passed else 1
