"""Real PostgreSQL servers for the test session, provisioned by chatbench itself.

``pg`` is one local (embedded wheel) server for the whole session; ``fresh_db`` gives each test its
own database on it (dropped afterwards), ``schema_db`` the same with the canonical schema applied.
Container tests need a Docker engine: they skip with the reason when none answers, except under
``CI=true`` where a missing engine is a failure (CI brings one up).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import drop_database, make_database

from chatbench import schema
from chatbench.provision import Server, provision

REPO = Path(__file__).resolve().parents[1]
STAGE_FOLDERS = ("schema", "loadgen", "verify", "benchmarks", "reports")


@pytest.fixture(scope="session", autouse=True)
def one_import_root() -> Iterator[None]:
    """Everything runs under ``chatbench.*``: no stage folder is ever imported by its folder name."""
    yield
    leaked = sorted(
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in STAGE_FOLDERS and str(getattr(module, "__file__", "") or "").startswith(str(REPO))
    )
    assert not leaked, f"imported by folder name instead of chatbench.*: {leaked}"


@pytest.fixture(scope="session", autouse=True)
def no_xdist_worker_variables_in_children() -> None:
    """Run with ``-n``, this session's worker variables would reach the suites and commands the tests
    start, and ``pytest benchmarks`` refuses to run under xdist (pytest-benchmark would time nothing).
    Those children are runs of their own; a test that wants the variables passes them explicitly."""
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        del os.environ[name]


@pytest.fixture(scope="session")
def pg() -> Iterator[Server]:
    with provision("local") as server:
        yield server


@pytest.fixture
def fresh_db(pg: Server) -> Iterator[Server]:
    db = make_database(pg)
    try:
        yield db
    finally:
        drop_database(db)


@pytest.fixture
def schema_db(fresh_db: Server) -> Server:
    schema.apply(fresh_db.url)
    return fresh_db
