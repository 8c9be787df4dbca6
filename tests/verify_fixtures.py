"""Shared fixtures of the verification tests: a seeded template database, cloned per test.

Seeding happens once per module into a template; each test gets ``CREATE DATABASE x TEMPLATE y``
(a fraction of a second) and mutates its own clone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chatbench.loadgen.result import SeedResult

from chatbench.provision import Server
from chatbench.provision.databases import create_database, drop_database


def seed_database(server: Server, profile: str = "smoke") -> SeedResult:
    """Seed the (empty) database of ``server`` with a loadgen profile (the template cache may serve it)."""
    from chatbench.loadgen import load_spec, seed

    return seed(server, load_spec(profile), progress=False)


@contextmanager
def clone(template: Server) -> Iterator[Server]:
    db = create_database(template, "vclone", template=template.database)
    try:
        yield db
    finally:
        drop_database(db)
