"""Helpers the tests share: databases on a test server, and the requirements of optional servers.

Container tests need a Docker engine: they skip with the reason when none answers, except under
``CI=true`` where a missing engine is a failure (CI brings one up). The same for Debian's PostgreSQL 15
and for anything else a test needs from the machine (``unavailable``): CI provides all of it, so under
``CI=true`` no test skips.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from chatbench.provision import Server
from chatbench.provision.databases import create_database, drop_database

DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")

__all__ = ["DEBIAN_PG15", "drop_database", "make_database", "require_docker", "require_pg15", "require_tmpfs_mount",
           "unavailable"]


def make_database(server: Server, prefix: str = "t") -> Server:
    """A new empty database on ``server``, owned by the test (drop it with ``drop_database``)."""
    return create_database(server, prefix)


def unavailable(reason: str, provide: str) -> NoReturn:
    """Skip for want of ``reason``; under ``CI=true`` fail instead (``provide`` says what CI must do)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}: {provide}")
    pytest.skip(reason)


def require_docker() -> None:
    from chatbench.provision.container import docker_available

    if not docker_available():
        unavailable("no Docker engine answers (run ../shared/docker-engine/engine.sh up and export its env)",
                    ".ci/run must bring one up")


def require_pg15() -> None:
    if not (DEBIAN_PG15 / "initdb").exists():
        unavailable(f"Debian's PostgreSQL 15 is not installed at {DEBIAN_PG15}", ".ci/run must install postgresql-15")


def require_tmpfs_mount(where: Path, size: str) -> None:
    """A small tmpfs mounted at ``where`` (a full disk on demand); the caller unmounts it."""
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        unavailable("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)", "CI runs as root and must mount")
