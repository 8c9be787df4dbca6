"""The schema around a bulk load: bare tables before it; keys, indexes, FKs and triggers after it.

The statements come from ``schema.load_phases()``, so the loaded schema is the canonical one. After
the load, index and primary-key builds run on two connections at once (biggest table first), then
the foreign keys (validated once, over the whole table, instead of per row), then the triggers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

import psycopg
from chatbench.schema.ddl import DdlStep
from chatbench.schema.models import TRIGGER_FUNCTIONS, metadata

from chatbench import schema

# Rough cost order for scheduling: the big table's builds first.
_TABLE_WEIGHT = {"messages": 0, "conversations": 1, "users": 2}


def drop_schema(conn: psycopg.Connection) -> None:
    """Remove a previous load's tables and functions (the database is ours: the caller checked)."""
    tables = ", ".join(t.name for t in reversed(metadata.sorted_tables))
    conn.execute(f"DROP TABLE IF EXISTS {tables} CASCADE")
    for name in TRIGGER_FUNCTIONS:
        conn.execute(f"DROP FUNCTION IF EXISTS {name}() CASCADE")


def create_bare(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        drop_schema(conn)
        for step in schema.load_phases().before:
            conn.execute(step.sql)


def split_after(steps: Sequence[DdlStep]) -> tuple[list[DdlStep], list[DdlStep], list[DdlStep]]:
    """(key and index builds, foreign keys, triggers)."""
    builds, fks, triggers = [], [], []
    for step in steps:
        if step.sql.startswith("CREATE TRIGGER"):
            triggers.append(step)
        elif "FOREIGN KEY" in step.sql:
            fks.append(step)
        else:
            builds.append(step)
    builds.sort(key=lambda s: (_TABLE_WEIGHT.get(s.table, 9), not s.sql.startswith("ALTER")))
    return builds, fks, triggers


def run_parallel(conninfo: str, steps: Sequence[DdlStep], connections: int) -> dict[str, float]:
    """Run independent DDL steps on ``connections`` autocommit connections; seconds per step."""
    import time

    todo: queue.SimpleQueue[DdlStep] = queue.SimpleQueue()
    for step in steps:
        todo.put(step)
    timings: dict[str, float] = {}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                while not errors:
                    try:
                        step = todo.get_nowait()
                    except queue.Empty:
                        return
                    started = time.perf_counter()
                    conn.execute(step.sql)
                    timings[step.name] = time.perf_counter() - started
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(connections, len(steps))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return timings


def set_sequences(conn: psycopg.Connection) -> None:
    """Identity sequences continue after the loaded ids, so the application can insert."""
    for table in metadata.sorted_tables:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), coalesce(max(id), 0) + 1, false) "
            f"FROM {table.name}"
        )
