"""pytest-benchmark's own flags on chatbench's suite: each works or is refused in one line naming the
alternative, before any server starts (the suite times fixed rounds with ``benchmark.pedantic``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from commandline import chatbench
from servers import unavailable

pytestmark = pytest.mark.slow  # each test runs the benchmark suite or `chatbench bench` as a child

ROOT = Path(__file__).resolve().parents[1]


def _suite(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "CHATBENCH_BACKEND": "local", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-q", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=300)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 4, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "chatbench:" not in done.stdout  # no session ran
    return lines[0]


@pytest.mark.parametrize(
    "flag,alternative",
    [
        (["--benchmark-min-rounds", "3"], "--chatbench-rounds N"),
        (["--benchmark-max-time=0.5"], "--chatbench-rounds N"),
        (["--benchmark-warmup", "on"], "--chatbench-warmup N"),
    ],
)
def test_a_flag_the_suite_would_ignore_is_refused_naming_the_alternative(flag: list[str], alternative: str) -> None:
    line = _one_line(_suite(*flag))
    assert line.startswith(f"ERROR: {flag[0].split('=')[0]}: ") and f"use {alternative}" in line


def test_a_flag_from_pytest_addopts_is_refused_too() -> None:
    line = _one_line(_suite(env={"PYTEST_ADDOPTS": "--benchmark-max-time 2"}))
    assert "--benchmark-max-time" in line and "--chatbench-rounds" in line


def test_histogram_without_its_optional_dependency_is_one_line() -> None:
    if find_spec("pygal") is not None:
        unavailable("pygal is installed here: --benchmark-histogram works", "CI's venv installs no pygal")
    line = _one_line(_suite("--benchmark-histogram"))
    assert "pip install 'pytest-benchmark[histogram]'" in line


def test_the_suite_under_pytest_xdist_is_refused_instead_of_timing_nothing() -> None:
    """Under xdist pytest-benchmark switches its timing off: the suite used to pass having measured
    nothing. An outer run's worker variable counts too (an app's suite under -n calling the suite)."""
    line = _one_line(_suite("--chatbench-profile", "smoke", env={"PYTEST_XDIST_WORKER": "gw1"}))
    assert "pytest-xdist" in line and "without -n" in line


def test_chatbench_bench_called_from_an_xdist_worker_still_measures(tmp_path: Path) -> None:
    """``chatbench bench`` is a command of its own: an inherited worker variable does not reach its suite."""
    results = tmp_path / "run.json"
    done = chatbench("bench", "--backend", "local", "--profile", "smoke", "-k", "latest_page", "--rounds", "20",
                     "--warmup", "2", "--results", str(results), "--json", str(tmp_path / "bench.json"),
                     env={"PYTEST_XDIST_WORKER": "gw1", "PYTEST_XDIST_WORKER_COUNT": "2"}, cwd=tmp_path)
    assert done.returncode in (0, 3), done.stderr[-2000:]  # 3: INCONCLUSIVE on a busy machine
    run = json.loads(results.read_text())
    assert run["scenarios"] and all(len(s["samples_ms"]) >= 20 for s in run["scenarios"]), run["scenarios"]


def test_flags_the_suite_honours_still_work(tmp_path: Path) -> None:
    """--benchmark-disable runs a scenario once without timing; --benchmark-json holds chatbench's rounds."""
    results = ("--chatbench-results", str(tmp_path / "r.json"))
    disabled = _suite("--chatbench-profile", "smoke", "-k", "latest_page", "--benchmark-disable", *results)
    assert disabled.returncode == 0 and "1 passed" in disabled.stdout, disabled.stdout[-2000:] + disabled.stderr
    out = tmp_path / "b.json"
    timed = _suite("--chatbench-profile", "smoke", "-k", "latest_page", "--chatbench-rounds", "7",
                   "--chatbench-warmup", "1", "--benchmark-json", str(out), *results)
    assert timed.returncode in (0, 1), timed.stdout[-2000:] + timed.stderr  # 1: a latency target missed
    (bench,) = json.loads(out.read_text())["benchmarks"]
    assert bench["stats"]["rounds"] == 7 and len(bench["extra_info"]["samples_ms"]) == 7
