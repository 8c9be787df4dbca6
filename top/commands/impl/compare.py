"""What ``chatbench compare`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.compare``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse

from chatbench import output
from chatbench.commands._common import out
from chatbench.reports import render_json
from chatbench.reports.compare import Thresholds, check_comparable, compare_runs
from chatbench.reports.inputs import read_one
from chatbench.reports.output import write_comparison
from chatbench.reports.render_terminal import render_comparison
from chatbench.settings import Settings


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
