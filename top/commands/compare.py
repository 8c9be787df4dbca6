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

NAME = "compare"
HELP = ("compare CURRENT.json with BASELINE.json: regressions with their statistics "
        "(exit 0 none / 1 regression / 3 inconclusive)")
SETTINGS = ("out", "label", "min_effect", "alpha", "allow_different_sizes", "format")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("current", type=Path, metavar="CURRENT.json")
    parser.add_argument("baseline", type=Path, metavar="BASELINE.json")
