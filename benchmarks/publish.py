"""What a finished benchmark run leaves behind: its report for people and its ``bench.json``.

``chatbench bench`` and the pytest suite show a run the same way (``show_run``). ``bench.json``
(``chatbench bench --json``) is pytest-benchmark's JSON format built from the run itself, so its
statistics, ``extra_info`` and the whole chatbench run under the ``"chatbench"`` key
(``reports/inputs.py`` reads it) describe the same measurement as the results JSON. The statistics
are pytest-benchmark's own (``pytest_benchmark.stats.Stats``) over the samples the verdict was judged
on, machine and commit information come from its functions, so a tool that reads pytest-benchmark's
files reads this one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pytest_benchmark import __version__ as pytest_benchmark_version
from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
from pytest_benchmark.stats import Stats
from pytest_benchmark.utils import get_commit_info

from chatbench.benchmarks.results import BenchmarkRun, ScenarioResult
from chatbench.benchmarks.table import render_run
from chatbench.convert import to_plain
from chatbench.errors import redact
from chatbench.files import write_atomically
from chatbench.output import Output

TEST = "test_history"
"""The suite's test (``benchmarks/test_history.py``): each benchmark is named as its parametrized case."""


def show_run(run: BenchmarkRun, out: Output, *, pinning: str, path: Path) -> None:
    """The run for people: a title with profile and CPU placement, the table, the verdict, the results file."""
    out.rule(f"chatbench: {run.environment.profile} profile, {pinning}")
    render_run(run, out)
    out.line(f"results (raw samples, environment): {path}")


def extra_info(result: ScenarioResult, pinning: str) -> dict[str, Any]:
    """A scenario's chatbench fields in a benchmark's ``extra_info``: statistics, raw samples, target, verdict."""
    target = result.target
    return {
        "scenario": result.scenario,
        "query": result.query,
        "params_version": result.params_version,
        "stats_ms": to_plain(result.stats),
        "samples_ms": list(result.samples_ms),
        "buffers": None if result.buffers is None else result.buffers.total,
        "target": None if target is None else {"p95_ms": target.p95_ms, "p99_ms": target.p99_ms,
                                               "buffers": target.buffers},
        "verdict": result.verdict,
        "attempts": result.attempts,
        "pinning": pinning,
    }


def _benchmark(result: ScenarioResult, pinning: str) -> dict[str, Any]:
    stats = Stats()
    for sample_ms in result.samples_ms:
        stats.update(sample_ms / 1000.0)  # pytest-benchmark's unit: seconds
    warmup = result.extra.get("warmup_rounds", 0)
    return {
        "group": result.query,
        "name": f"{TEST}[{result.scenario}]",
        "fullname": f"{TEST}.py::{TEST}[{result.scenario}]",
        "params": {"scenario": result.scenario},
        "param": result.scenario,
        "extra_info": extra_info(result, pinning),
        # How the rounds were timed (``benchmarks.session.time_rounds``): a fixed count, gc off, no calibration.
        "options": {"disable_gc": True, "timer": "perf_counter", "min_rounds": len(result.samples_ms),
                    "max_time": None, "min_time": None, "precision": None, "warmup": bool(warmup),
                    "warmup_iterations": warmup},
        "stats": {**stats.as_dict(), "iterations": 1},
    }


def pytest_benchmark_document(run: BenchmarkRun, pinning: str) -> dict[str, Any]:
    """The run in pytest-benchmark's ``--benchmark-json`` format, one benchmark per measured scenario."""
    return {
        "machine_info": pytest_benchmark_generate_machine_info(),
        "commit_info": get_commit_info(),
        "benchmarks": [_benchmark(result, pinning) for result in run.scenarios],
        "datetime": run.created_at,
        "version": pytest_benchmark_version,
        "chatbench": to_plain(run),
    }


def write_bench_json(run: BenchmarkRun, pinning: str, path: str | os.PathLike[str]) -> Path:
    """``bench.json`` atomically and scrubbed of secrets, like every result file chatbench writes."""
    return write_atomically(Path(path), redact(json.dumps(pytest_benchmark_document(run, pinning), indent=4)) + "\n")
