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

NAME = "compare"
HELP = "compare CURRENT.json with BASELINE.json: regressions with their statistics (exit 1 on regression)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("current", type=Path, metavar="CURRENT.json")
    parser.add_argument("baseline", type=Path, metavar="BASELINE.json")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write compare.md, compare.html and compare.json there",
    )
    parser.add_argument(
        "--label",
        default=None,
        help="with a multi-server signoff.json: the server label to compare (e.g. 'PostgreSQL 15')",
    )
    parser.add_argument(
        "--min-effect",
        type=float,
        default=0.10,
        help="smallest relative change called a regression or improvement (default 0.10)",
    )
    parser.add_argument("--alpha", type=float, default=0.01, help="Mann-Whitney significance level (default 0.01)")


def run(args: argparse.Namespace) -> int:
    from chatbench.errors import ConfigError
    from chatbench.reports.compare import Thresholds, compare_runs
    from chatbench.reports.inputs import read_one
    from chatbench.reports.output import write_comparison
    from chatbench.reports.render_markdown import render_comparison

    if not 0 < args.min_effect < 10:
        raise ConfigError(f"--min-effect {args.min_effect}: give a fraction, e.g. 0.10 for 10%")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha {args.alpha}: must be between 0 and 1, e.g. 0.01")
    _, current = read_one(args.current, label=args.label)
    _, baseline = read_one(args.baseline, label=args.label)
    with console.status("comparing (bootstrap and Mann-Whitney on the raw samples)"):
        comparison = compare_runs(current, baseline, Thresholds(min_effect=args.min_effect, alpha=args.alpha))
    print(render_comparison(comparison, title=f"chatbench compare {args.current.name} vs {args.baseline.name}"))
    if args.out is not None:
        written = write_comparison(comparison, args.out)
        console.print(f"[dim]wrote {', '.join(str(p) for p in written.values())}[/dim]")
    return 0 if comparison.passed else 1
