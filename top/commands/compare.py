"""Compare a benchmark run with a baseline: per scenario p50/p95/p99 change with bootstrap confidence
intervals, Mann-Whitney U on the raw samples (CPU time per round when both runs measured it), a minimum
effect that must also clear the noise both runs measured; deterministic metrics (buffers, rows, plan
shape) compared exactly; environment fingerprints compared first. Either file may be any result file
chatbench writes: a results JSON (bench-run.json, load-run.json), a bench.json or a signoff.json.
Runs of different data sizes are refused unless --allow-different-sizes.

Exit 0 no regression, 1 a regression (or a scenario that could not be compared soundly), 2 bad input,
3 inconclusive (an effect larger than the minimum but not clear of the measured noise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chatbench import output
from chatbench.commands._common import out
from chatbench.reports import render_json
from chatbench.reports.compare import Thresholds, check_comparable, compare_runs
from chatbench.reports.inputs import read_one
from chatbench.reports.output import write_comparison
from chatbench.reports.render_terminal import render_comparison
from chatbench.settings import Settings

NAME = "compare"
HELP = ("compare CURRENT.json with BASELINE.json: regressions with their statistics "
        "(exit 0 none / 1 regression / 3 inconclusive)")


SETTINGS = ("out", "label", "min_effect", "alpha", "allow_different_sizes", "format")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("current", type=Path, metavar="CURRENT.json")
    parser.add_argument("baseline", type=Path, metavar="BASELINE.json")


def run(settings: Settings, args: argparse.Namespace) -> int:
    _, current = read_one(args.current, label=settings.label)
    _, baseline = read_one(args.baseline, label=settings.label)
    check_comparable(current, baseline, allow_different_sizes=settings.allow_different_sizes)
    with out.stage("compare") as stage:
        stage.step("bootstrap and Mann-Whitney on the raw samples")
        comparison = compare_runs(current, baseline, Thresholds(min_effect=settings.min_effect, alpha=settings.alpha))
    title = f"chatbench compare {args.current} vs {args.baseline}"
    document = settings.format == "json"
    # The report goes to stdout, unless stdout holds the JSON document (--format json): then to stderr.
    render_comparison(comparison, out if document else output.stdout(), title=title)
    if settings.out is not None:
        written = write_comparison(comparison, settings.out)
        out.note(f"wrote {', '.join(str(p) for p in written.values())}")
    if document:
        output.print_document(render_json.render_comparison(comparison))
    return comparison.exit_code
