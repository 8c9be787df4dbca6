"""Performance history: every run kept in a store, change points found across runs, exports.

  chatbench history add RESULT.json...   add runs after the fact (bench-run.json, bench.json, signoff.json)
  chatbench history show [SCENARIO...]   latest values with their trend; writes OUT/history.html (trend plots)
  chatbench history detect [SCENARIO...] change points per series (E-divisive means, as Apache Otava, with a
                                         rank test): commit range, change, p-value, likely cause; exit 1 if
                                         the latest run made one appear
  chatbench history export FORMAT        bmf | github-action-benchmark | otava-csv, on stdout

The store is --history (a SQLite file, default history.sqlite in the cache dir, or a postgresql:// URL).
The commit and branch of an added run come from --commit/--branch, else the CI's variables, else git.
"""

from __future__ import annotations

import argparse

NAME = "history"
HELP = "performance history: add runs, show trends, detect change points, export (bmf, github-action-benchmark, ...)"
SETTINGS = ("history", "commit", "branch", "out")
ACTIONS = ("add", "show", "detect", "export")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, metavar="ACTION", help=" | ".join(ACTIONS))
    parser.add_argument("items", nargs="*", metavar="ARG",
                        help="add: result files; show/detect: scenarios (default all); export: the format")
