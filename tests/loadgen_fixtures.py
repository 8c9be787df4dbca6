"""Seeded databases for any test: seed once per key on the session server, clone per test.

``seeded_database(pg)`` yields a new database holding the smoke history (or another profile/seed)
and its ``SeedResult``. The first call for a key seeds and publishes a template database; later
calls get ``CREATE DATABASE ... TEMPLATE`` (tens of milliseconds at smoke size).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from servers import drop_database, make_database

from chatbench import loadgen
from chatbench.provision import Server


@contextlib.contextmanager
def seeded_database(
    pg: Server, profile: str = "smoke", *, seed: int = 0, overrides: dict[str, Any] | None = None
) -> Iterator[tuple[Server, loadgen.SeedResult]]:
    db = make_database(pg, "seeded")
    try:
        spec = loadgen.load_spec(profile, overrides=overrides)
        yield db, loadgen.seed(db, spec, seed=seed, progress=False)
    finally:
        drop_database(db)
