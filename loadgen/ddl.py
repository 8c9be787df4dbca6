"""The schema around a bulk load, from ``schema.load_phases()``: the loaded schema is the canonical one.

``load_ddl()`` sorts the canonical statements by what the loader does with them:

- ``create``: bare tables (and trigger functions), per table; the big tables without their keys;
- ``builds``: key and index builds per table; a primary key is built as ``CREATE UNIQUE INDEX`` (a
  SHARE lock, so the table's other index builds run beside it on other connections) and attached
  with ``ADD CONSTRAINT ... PRIMARY KEY USING INDEX`` (catalog only);
- ``foreign_keys`` per referencing table, and ``triggers``.

``run_parallel`` runs independent steps on several connections, each with the maintenance memory
and parallel workers ``MaintenanceBudget`` gives it for the cores and memory present.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from chatbench.schema.ddl import DdlStep
from chatbench.schema.models import TRIGGER_FUNCTIONS, metadata

from chatbench import schema
from chatbench.provision.paths import memory_available

_PRIMARY_KEY = re.compile(r"ALTER TABLE (\S+) ADD CONSTRAINT (\S+) PRIMARY KEY \((.+)\)$", re.S)
_FOREIGN_KEY = re.compile(
    r"ALTER TABLE (\S+) ADD CONSTRAINT (\S+) FOREIGN KEY ?\((\w+)\) REFERENCES (\S+) \((\w+)\)", re.S
)


@dataclass(frozen=True)
class ForeignKey:
    """A single-column foreign key, parsed from its canonical statement."""

    step: DdlStep
    table: str
    name: str
    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class LoadDdl:
    functions: tuple[str, ...]
    create: dict[str, tuple[str, ...]]  # table -> CREATE TABLE (+ DROP of a bulk table's primary key)
    builds: dict[str, tuple[DdlStep, ...]]  # table -> index builds (runnable side by side)
    attach: dict[str, tuple[str, ...]]  # table -> PRIMARY KEY USING INDEX, after its builds
    foreign_keys: dict[str, tuple[ForeignKey, ...]]  # referencing table -> its foreign keys
    triggers: tuple[DdlStep, ...]


def load_ddl() -> LoadDdl:
    phases = schema.load_phases()
    functions = tuple(s.sql for s in phases.before if not s.table)
    create: dict[str, list[str]] = {}
    for step in phases.before:
        if step.table:
            create.setdefault(step.table, []).append(step.sql)
    builds: dict[str, list[DdlStep]] = {}
    attach: dict[str, list[str]] = {}
    foreign_keys: dict[str, list[ForeignKey]] = {}
    triggers: list[DdlStep] = []
    for step in phases.after:
        if step.sql.startswith("CREATE TRIGGER"):
            triggers.append(step)
        elif "FOREIGN KEY" in step.sql:
            match = _FOREIGN_KEY.match(step.sql)
            if match is None:
                raise AssertionError(f"unexpected foreign key statement: {step.sql}")
            table, name, column, ref_table, ref_column = match.groups()
            foreign_keys.setdefault(step.table, []).append(ForeignKey(step, table, name, column, ref_table, ref_column))
        elif (pk := _PRIMARY_KEY.match(step.sql)) is not None:
            table, name, columns = pk.groups()
            builds.setdefault(step.table, []).append(
                DdlStep(name, step.table, f"CREATE UNIQUE INDEX {name} ON {table} ({columns})"))
            attach.setdefault(step.table, []).append(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}")
        else:
            builds.setdefault(step.table, []).append(step)
    return LoadDdl(
        functions, {t: tuple(v) for t, v in create.items()}, {t: tuple(v) for t, v in builds.items()},
        {t: tuple(v) for t, v in attach.items()}, {t: tuple(v) for t, v in foreign_keys.items()}, tuple(triggers),
    )


def drop_schema(conn: psycopg.Connection) -> None:
    """Remove a previous load's tables and functions (the database is ours: the caller checked)."""
    tables = ", ".join(t.name for t in reversed(metadata.sorted_tables))
    conn.execute(f"DROP TABLE IF EXISTS {tables} CASCADE")
    for name in TRIGGER_FUNCTIONS:
        conn.execute(f"DROP FUNCTION IF EXISTS {name}() CASCADE")


def create_bare(conninfo: str) -> None:
    """Every table bare (no keys to check while loading): the raw-COPY benchmark's starting point."""
    with psycopg.connect(conninfo) as conn:
        drop_schema(conn)
        for step in schema.load_phases().before:
            conn.execute(step.sql)


@dataclass(frozen=True)
class MaintenanceBudget:
    """Per-connection ``maintenance_work_mem`` and parallel maintenance workers for concurrent builds.

    ``connections`` builds share the cores: each gets ``cores // connections - 1`` parallel workers
    (0 when there are fewer cores than builds). Sort memory is small on purpose, measured: the
    messages' three builds ran 12-30% faster at 10^7 rows with 64 MB each than with 1.9 GB (paired
    runs on the 2-core machine), and no slower at 10^6; sorting cache-sized runs and merging them
    beats one huge in-memory sort. It grows only to keep the merge to one pass (at most
    ``MERGE_RUNS`` runs of ``SORT_TUPLE_BYTES`` per row), within a quarter of the available memory.
    """

    connections: int
    parallel_workers: int
    work_mem_mb: int

    SORT_MEMORY_MB = 64
    MERGE_RUNS = 200  # below the merge order 64 MB allows (about 240 tapes): one merge pass
    SORT_TUPLE_BYTES = 56  # the widest index tuple (conversation_id, created_at, id) plus its sort slot

    @classmethod
    def for_machine(
        cls, connections: int, rows: int = 0, cores: int | None = None, available_mb: int | None = None
    ) -> MaintenanceBudget:
        cores = cores or usable_cores()
        available = available_mb if available_mb is not None else (memory_available() >> 20 or 1024)
        connections = max(1, connections)
        one_pass = -(-rows * cls.SORT_TUPLE_BYTES // cls.MERGE_RUNS) >> 20
        per_build = max(cls.SORT_MEMORY_MB, min(one_pass, available // 4 // connections))
        return cls(connections, max(0, cores // connections - 1), per_build)

    def settings(self) -> tuple[str, ...]:
        return (
            f"SET maintenance_work_mem = '{self.work_mem_mb}MB'",
            f"SET max_parallel_maintenance_workers = {self.parallel_workers}",
        )


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_parallel(
    conninfo: str, steps: Sequence[DdlStep | str], connections: int, budget: MaintenanceBudget | None = None
) -> dict[str, float]:
    """Run independent DDL steps on ``connections`` autocommit connections; seconds per step."""
    todo: queue.SimpleQueue[DdlStep | str] = queue.SimpleQueue()
    for step in steps:
        todo.put(step)
    timings: dict[str, float] = {}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                for setting in budget.settings() if budget is not None else ():
                    conn.execute(setting)
                while not errors:
                    try:
                        step = todo.get_nowait()
                    except queue.Empty:
                        return
                    started = time.perf_counter()
                    sql = step if isinstance(step, str) else step.sql
                    conn.execute(sql)
                    timings[sql if isinstance(step, str) else step.name] = time.perf_counter() - started
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


def set_sequences(conn: psycopg.Connection, tables: Sequence[str] | None = None) -> None:
    """Identity sequences continue after the loaded ids, so the application can insert."""
    for table in tables or [t.name for t in metadata.sorted_tables]:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
        )
