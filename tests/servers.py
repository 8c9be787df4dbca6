"""Helpers the tests share: databases on a test server, and the requirements of optional servers.

Container tests need a Docker engine: they skip with the reason when none answers, except under
``CI=true`` where a missing engine is a failure (CI brings one up). The same for Debian's PostgreSQL 15.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatbench.provision import Server
from chatbench.provision.databases import create_database, drop_database

DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")

__all__ = ["DEBIAN_PG15", "drop_database", "make_database", "require_docker", "require_pg15"]


def make_database(server: Server, prefix: str = "t") -> Server:
    """A new empty database on ``server``, owned by the test (drop it with ``drop_database``)."""
    return create_database(server, prefix)


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
