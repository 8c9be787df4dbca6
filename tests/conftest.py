"""Real PostgreSQL servers for the test session, provisioned by chatbench itself.

``pg`` is one local (embedded wheel) server for the whole session; ``fresh_db`` gives each test its
own database on it (dropped afterwards), ``schema_db`` the same with the canonical schema applied.
Container tests need a Docker engine: they skip with the reason when none answers, except under
``CI=true`` where a missing engine is a failure (CI brings one up).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import schema
from chatbench.provision import Server, provision
from chatbench.provision.databases import create_database, drop_database

DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def pg() -> Iterator[Server]:
    with provision("local") as server:
        yield server


def make_database(server: Server, prefix: str = "t") -> Server:
    """A new empty database on ``server``, owned by the test (drop it with ``drop_database``)."""
    return create_database(server, prefix)


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


def require_docker() -> None:
    from chatbench.provision.container import docker_available

    if not docker_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Docker engine answers: .ci/run must bring one up")
        pytest.skip("no Docker engine answers (run ../shared/docker-engine/engine.sh up and export its env)")


def require_pg15() -> None:
    if not (DEBIAN_PG15 / "initdb").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {DEBIAN_PG15} is missing: .ci/run must install postgresql-15")
        pytest.skip(f"Debian's PostgreSQL 15 is not installed at {DEBIAN_PG15}")
