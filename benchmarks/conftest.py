"""Session fixtures and options of the benchmark suite: one throwaway server, seeded once.

Options (each also settable by environment, the option wins):
  --chatbench-profile NAME     data profile to seed (smoke | ci | release); env CHATBENCH_PROFILE; default ci
  --chatbench-backend NAME     auto | local | container | dsn; env CHATBENCH_BACKEND; default auto
  --chatbench-seed N           generator seed; default 1
  --chatbench-targets FILE     budgets file (default benchmarks/targets.toml); env CHATBENCH_TARGETS
  --chatbench-rounds N         timed rounds per scenario (default by profile)
  --chatbench-warmup N         warm-up rounds per scenario (default by profile)
  --chatbench-pin MODE         same-core | off; default same-core
  --chatbench-driver NAME      psycopg (default: what the app pays) | libpq (what the database costs)
  --chatbench-results FILE     where the BenchmarkRun JSON goes; default out/bench-run.json

The seed goes through the snapshot cache (``loadgen.seed(..., use_cache=True)``), so a second run
of the same profile, seed and schema reuses the seeded template instead of generating again.
At the end, the terminal summary prints p50/p95/p99 per scenario with target and verdict, and the
run (raw samples, environment fingerprint, depth scaling) is written as results JSON.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chatbench.benchmarks.session import BenchSession, open_session
from chatbench.benchmarks.table import render_table
from chatbench.benchmarks.targets import load_targets

from chatbench.errors import ChatbenchError

_SESSION_KEY = pytest.StashKey[BenchSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chatbench", "chatbench benchmarks")
    group.addoption("--chatbench-profile", default=None, help="data profile to seed (default: ci)")
    group.addoption("--chatbench-backend", default=None, help="auto | local | container | dsn (default: auto)")
    group.addoption("--chatbench-seed", type=int, default=None, help="generator seed (default: 1)")
    group.addoption("--chatbench-targets", default=None, help="targets TOML (default: benchmarks/targets.toml)")
    group.addoption("--chatbench-rounds", type=int, default=None, help="timed rounds per scenario")
    group.addoption("--chatbench-warmup", type=int, default=None, help="warm-up rounds per scenario")
    group.addoption("--chatbench-pin", default=None, choices=("same-core", "off"),
                    help="CPU placement of client and backend (default: same-core)")
    group.addoption("--chatbench-driver", default=None, choices=("psycopg", "libpq"),
                    help="psycopg: what the app pays (default); libpq: what the database costs (pgbench-like)")
    group.addoption("--chatbench-results", default=None, help="results JSON path (default: out/bench-run.json)")


def _option(config: pytest.Config, name: str, env: str, default: Any) -> Any:
    value = config.getoption(name)
    if value is not None:
        return value
    if os.environ.get(env) is not None:
        return os.environ[env]
    return default


@pytest.fixture(scope="session")
def bench_profile(pytestconfig: pytest.Config) -> str:
    return str(_option(pytestconfig, "--chatbench-profile", "CHATBENCH_PROFILE", "ci"))


@pytest.fixture(scope="session")
def bench_server(pytestconfig: pytest.Config) -> Iterator[Any]:
    from chatbench.provision import provision
    from chatbench.settings import resolve

    try:
        settings = resolve({"backend": pytestconfig.getoption("--chatbench-backend")})
        with provision(settings.backend, pg_bin=settings.pg_bin, image=settings.image, dsn=settings.dsn) as server:
            yield server
    except ChatbenchError as exc:
        pytest.exit(f"chatbench: {exc}", returncode=2)


@pytest.fixture(scope="session")
def bench_seeded(pytestconfig: pytest.Config, bench_server: Any, bench_profile: str) -> tuple[Any, Any]:
    """(server pointed at the seeded database, SeedResult): seeded once, through the snapshot cache."""
    from chatbench import loadgen
    seed = int(_option(pytestconfig, "--chatbench-seed", "CHATBENCH_SEED", 1))
    try:
        result = loadgen.seed(bench_server, loadgen.load_spec(bench_profile), seed=seed, use_cache=True)
    except ChatbenchError as exc:
        pytest.exit(f"chatbench: {exc}", returncode=2)
    server = bench_server
    if result.database != bench_server.database:
        server = bench_server.with_database(result.database, owns_database=True)
    return server, result


@pytest.fixture(scope="session")
def bench_session(request: pytest.FixtureRequest, pytestconfig: pytest.Config, bench_seeded: tuple[Any, Any],
                  bench_profile: str) -> Iterator[BenchSession]:
    server, seed = bench_seeded
    try:
        targets = load_targets(pytestconfig.getoption("--chatbench-targets"))
    except ChatbenchError as exc:
        pytest.exit(str(exc), returncode=2)
    pin_mode = _option(pytestconfig, "--chatbench-pin", "CHATBENCH_PIN", "same-core")
    with open_session(server, seed, profile=bench_profile, targets=targets, pin_mode=pin_mode,
                      rounds=pytestconfig.getoption("--chatbench-rounds"),
                      warmup=pytestconfig.getoption("--chatbench-warmup"),
                      driver=_option(pytestconfig, "--chatbench-driver", "CHATBENCH_DRIVER", "psycopg")) as session:
        pytestconfig.stash[_SESSION_KEY] = session
        yield session


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is None or not session.results:
        return
    from chatbench.benchmarks.results import write

    run = session.to_run()
    path = Path(config.getoption("--chatbench-results") or os.environ.get("CHATBENCH_RESULTS")
                or "out/bench-run.json")
    write(run, path)
    terminalreporter.write_sep("=", f"chatbench: {session.profile} profile, {session.pinning.describe()}")
    for line in render_table(run).splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"results (raw samples, environment): {path}")
