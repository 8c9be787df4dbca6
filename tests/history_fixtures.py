"""Result files for the history tests: real chatbench result JSON (``benchmarks.results.write``) of runs
built by ``reports_fixtures.make_run``, each with its own id and time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reports_fixtures import make_run

from chatbench.benchmarks.results import write


def result_file(folder: Path, index: int, *, slow: float = 1.0, buffers: int | None = None) -> Path:
    run = make_run(seed=index, n=200, run_id=f"run{index:03d}",
                   slow={"latest_page": slow} if slow != 1.0 else None,
                   buffers={"latest_page": buffers} if buffers is not None else None)
    run = replace(run, created_at=f"2026-12-01T{index // 60:02d}:{index % 60:02d}:00+00:00")
    return write(run, folder / f"bench-run-{index:03d}.json")
