"""Shared fixtures of the verification tests: a seeded template database, cloned per test.

Seeding happens once per module into a template; each test gets ``CREATE DATABASE x TEMPLATE y``
(a fraction of a second) and mutates its own clone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from chatbench.provision import Server
from loadgen.result import SeedResult


def seed_database(server: Server, profile: str = "smoke") -> SeedResult:
    """Seed the (empty) database of ``server`` with a loadgen profile (the template cache may serve it)."""
    from loadgen import load_spec, seed

    return seed(server, load_spec(profile), progress=False)


def create_database(server: Server, prefix: str, template: str | None = None) -> Server:
    name = f"{prefix}_{secrets.token_hex(4)}"
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(query)
    return server.with_database(name, owns_database=True)


def drop(server: Server) -> None:
    with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(server.database)))


@contextmanager
def clone(template: Server) -> Iterator[Server]:
    db = create_database(template, "vclone", template.database)
    try:
        yield db
    finally:
        drop(db)
