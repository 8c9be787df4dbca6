"""Reading the runs a comparison takes: a benchmark result JSON or a ``signoff.json`` (one run per server)."""

from __future__ import annotations

import json
from pathlib import Path

from chatbench.benchmarks.results import BenchmarkRun, from_json
from chatbench.reports.signoff import benchmark_runs_in, is_signoff_document

from chatbench.errors import ChatbenchError


def read_runs(path: str | Path) -> tuple[tuple[str, BenchmarkRun], ...]:
    """(label, run) pairs in ``path``; a benchmark result file gives one pair labelled by its run id."""
    source = Path(path)
    if not source.is_file():
        raise ChatbenchError(f"{source}: no such file; pass a benchmark result JSON or a signoff.json")
    text = source.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChatbenchError(
            f"{source}: not JSON ({exc.msg} at line {exc.lineno}); pass a file written by chatbench"
        ) from None
    if is_signoff_document(data):
        try:
            runs = benchmark_runs_in(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ChatbenchError(f"{source}: a signoff.json whose benchmark run does not read ({exc})") from None
        if not runs:
            raise ChatbenchError(f"{source}: this sign-off holds no benchmark run (its benchmarks did not run)")
        return runs
    try:
        run = from_json(text)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChatbenchError(f"{source}: not a chatbench result ({type(exc).__name__}: {exc})") from None
    except ChatbenchError as exc:
        raise ChatbenchError(f"{source}: not a chatbench result ({exc})") from None
    return ((run.run_id, run),)


def read_one(path: str | Path, *, label: str | None = None) -> tuple[str, BenchmarkRun]:
    """The single run in ``path`` (or the one whose label contains ``label`` when it holds several)."""
    runs = read_runs(path)
    if label is not None:
        matching = [r for r in runs if label in r[0]]
        if not matching:
            raise ChatbenchError(f"{path}: no run labelled like {label!r}; it holds {', '.join(r[0] for r in runs)}")
        return matching[0]
    if len(runs) > 1:
        raise ChatbenchError(f"{path}: holds {len(runs)} runs ({', '.join(r[0] for r in runs)}); pick one with --label")
    return runs[0]
