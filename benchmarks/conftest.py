"""Session fixtures of the benchmark suite: one throwaway server, seeded once, one measuring session.

The options (``--chatbench-profile``, ``--chatbench-rounds``, ...) come from chatbench's pytest plugin,
generated from the settings declarations (``chatbench.settings``); each is also settable by its
``CHATBENCH_*`` variable or in ``chatbench.toml`` / ``[tool.chatbench]``, with the ``chatbench bench``
defaults. ``pytest --help`` lists them under "chatbench".

The seed goes through the snapshot cache, so a second run of the same profile, seed and schema reuses
the seeded template instead of generating again. At the end, the terminal summary prints
p50/p95/p99 per scenario with target and verdict, and the run (raw samples, environment fingerprint,
depth scaling) is written as results JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chatbench.benchmarks.flags import refusal
from chatbench.benchmarks.options import SUITE_COMMAND, SUITE_SETTINGS
from chatbench.benchmarks.session import BenchSession, open_session
from chatbench.benchmarks.table import render_table
from chatbench.benchmarks.targets import load_targets

from chatbench.errors import ChatbenchError
from chatbench.settings import Settings, resolve_pytest

_SESSION_KEY = pytest.StashKey[BenchSession]()


def pytest_collection_modifyitems(config: pytest.Config) -> None:
    """pytest-benchmark's flags that the suite cannot honour are a usage error before anything runs
    (benchmarks/flags.py); checked here, not at configure, so ``--pyargs`` (which loads this file late)
    gets the same one line."""
    problem = refusal(config)
    if problem is not None:
        raise pytest.UsageError(problem)


@pytest.fixture(scope="session")
def bench_settings(pytestconfig: pytest.Config) -> Settings:
    try:
        return resolve_pytest(pytestconfig, SUITE_COMMAND, SUITE_SETTINGS)
    except ChatbenchError as exc:
        pytest.exit(f"chatbench: {exc}", returncode=2)


@pytest.fixture(scope="session")
def bench_profile(bench_settings: Settings) -> str:
    return bench_settings.profile


@pytest.fixture(scope="session")
def bench_server(bench_settings: Settings) -> Iterator[Any]:
    import sys

    from chatbench.provision.choice import provision_from

    try:
        with provision_from(bench_settings, announce=lambda message: print(message, file=sys.stderr)) as server:
            yield server
    except ChatbenchError as exc:
        pytest.exit(f"chatbench: {exc}", returncode=2)


@pytest.fixture(scope="session")
def bench_seeded(bench_settings: Settings, bench_server: Any, bench_profile: str) -> tuple[Any, Any]:
    """(server pointed at the seeded database, SeedResult): seeded once, through the snapshot cache."""
    from chatbench import loadgen

    try:
        result = loadgen.seed(bench_server, loadgen.load_spec(bench_profile), seed=bench_settings.seed,
                              use_cache=bench_settings.cache)
    except ChatbenchError as exc:
        pytest.exit(f"chatbench: {exc}", returncode=2)
    server = bench_server
    if result.database != bench_server.database:
        server = bench_server.with_database(result.database, owns_database=True)
    return server, result


@pytest.fixture(scope="session")
def bench_session(pytestconfig: pytest.Config, bench_settings: Settings, bench_seeded: tuple[Any, Any],
                  bench_profile: str) -> Iterator[BenchSession]:
    server, seed = bench_seeded
    try:
        targets = load_targets(bench_settings.targets)
    except ChatbenchError as exc:
        pytest.exit(str(exc), returncode=2)
    with open_session(server, seed, profile=bench_profile, targets=targets, pin_mode=bench_settings.pin,
                      rounds=bench_settings.rounds, warmup=bench_settings.warmup,
                      driver=bench_settings.driver, retries=bench_settings.retries,
                      retry_budget_s=bench_settings.retry_budget) as session:
        pytestconfig.stash[_SESSION_KEY] = session
        yield session


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    """The chatbench run (environment, raw samples, noise, verdicts) inside ``--benchmark-json``, so
    ``chatbench compare`` reads that file like every other result file chatbench writes."""
    bench = config.stash.get(_SESSION_KEY, None)
    if bench is not None and bench.results:
        output_json["chatbench"] = bench.to_run().to_dict()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is None or not session.results:
        return
    from chatbench.benchmarks.results import write

    run = session.to_run()
    settings = resolve_pytest(config, SUITE_COMMAND, ("results",))
    assert settings.results is not None  # the bench command's default is a file
    path = Path(settings.results)
    write(run, path)
    terminalreporter.write_sep("=", f"chatbench: {session.profile} profile, {session.pinning.describe()}")
    for line in render_table(run).splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"results (raw samples, environment): {path}")
