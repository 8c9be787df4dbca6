"""Reading the runs a comparison takes, from every result file chatbench writes.

- a results JSON (``chatbench bench --results``, ``chatbench load``, ``bench --fidelity``): one run;
- ``signoff.json``: one run per server it ran on;
- ``bench.json`` (``chatbench bench --json``, pytest-benchmark's format): the suite puts the whole
  chatbench run under its ``"chatbench"`` key (``benchmarks/conftest.py``).

Files chatbench writes that hold no run (``compare.json``, a ``verify --json`` result) are refused
with a line saying what they are and what to pass instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chatbench.benchmarks.results import BenchmarkRun, from_json
from chatbench.convert import from_plain
from chatbench.errors import ChatbenchError

SIGNOFF_KIND = "chatbench-signoff"
"""The ``kind`` of a ``signoff.json`` (``reports.signoff`` writes it): read here without importing the sign-off
pipeline, so that ``compare`` and ``history`` start without it."""
WHAT_TO_PASS = "pass a results JSON (bench-run.json, load-run.json), a bench.json or a signoff.json"


def read_runs(path: str | Path) -> tuple[tuple[str, BenchmarkRun], ...]:
    """(label, run) pairs in ``path``; a benchmark result file gives one pair labelled by its run id."""
    source = Path(path)
    if not source.is_file():
        raise ChatbenchError(f"{source}: no such file; {WHAT_TO_PASS}")
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
    _refuse_runless(source, data)
    if isinstance(data, Mapping) and "benchmarks" in data and "format_version" not in data:
        return _from_pytest_benchmark(source, data)
    try:
        run = from_json(text)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChatbenchError(f"{source}: not a chatbench result ({type(exc).__name__}: {exc})") from None
    except ChatbenchError as exc:
        raise ChatbenchError(f"{source}: not a chatbench result ({exc})") from None
    return ((run.run_id, run),)


def _refuse_runless(source: Path, data: Any) -> None:
    if not isinstance(data, Mapping):
        return
    if data.get("kind") == "chatbench-comparison":
        raise ChatbenchError(f"{source}: a comparison report (compare.json), not a run; {WHAT_TO_PASS}")
    if "findings" in data and "checks" in data and "kind" not in data:
        raise ChatbenchError(f"{source}: a verification result (verify --json), not a benchmark run; {WHAT_TO_PASS}")


def _from_pytest_benchmark(source: Path, data: Mapping[str, Any]) -> tuple[tuple[str, BenchmarkRun], ...]:
    """The chatbench run a ``bench.json`` carries (written by ``benchmarks/conftest.py``)."""
    embedded = data.get("chatbench")
    if not isinstance(embedded, Mapping):
        raise ChatbenchError(
            f"{source}: a pytest-benchmark JSON without a chatbench run (written by an older chatbench or "
            "another suite); compare the results JSON the same bench run wrote (--results, default "
            "out/bench-run.json)"
        )
    try:
        run = from_plain(BenchmarkRun, embedded)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChatbenchError(f"{source}: its chatbench run does not read ({type(exc).__name__}: {exc})") from None
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


def benchmark_runs_in(data: Mapping[str, Any]) -> tuple[tuple[str, BenchmarkRun], ...]:
    """(label, run) pairs found in a ``signoff.json`` document (what ``compare`` reads from one)."""
    runs = []
    for target in data.get("targets", ()):
        if target.get("benchmark"):
            runs.append((str(target.get("label", "")), from_plain(BenchmarkRun, target["benchmark"])))
    return tuple(runs)


def is_signoff_document(data: Any) -> bool:
    return isinstance(data, Mapping) and data.get("kind") == SIGNOFF_KIND
