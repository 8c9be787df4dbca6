"""The built schema taken apart around a bulk load and put back after it, by the catalog's own definitions.

``load_ddl(conn)`` reads what the schema holds (triggers, secondary indexes, keys, foreign keys) and
says what the loader does with it:

- ``strip``: what is dropped before the load (triggers, secondary indexes, the keys of the big tables
  and the foreign keys that depend on them);
- ``builds``: index and key builds per table, run side by side; a primary key or UNIQUE constraint is
  built as its unique index (a SHARE lock, so the table's other builds run beside it) and attached
  with ``ADD CONSTRAINT ... USING INDEX`` (catalog only);
- ``foreign_keys`` added back after the load, ``kept_foreign_keys`` proven, and ``triggers``.

Each statement put back is the catalog's definition of the object dropped, so the loaded schema is the
schema that was built, whatever built it. ``run_parallel`` runs independent steps on several
connections, each with the maintenance memory and parallel workers ``MaintenanceBudget`` gives it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from chatbench.provision.paths import memory_available
from chatbench.schema import package as schema_package
from chatbench.schema.ddl import DdlStep
from chatbench.schema.package import SchemaPackage


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key as the catalog spells it; ``column``/``ref_column`` are set for single-column keys."""

    step: DdlStep
    table: str
    name: str
    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class LoadDdl:
    """The built schema taken apart around the bulk load, and put back after it exactly as it was.

    ``strip`` runs before the load (drops what would slow it: triggers, secondary indexes, the keys of
    the big tables and the foreign keys that depend on them); the rest puts back what it dropped,
    each statement being the catalog's own definition of the object.
    """

    strip: tuple[str, ...]
    builds: dict[str, tuple[DdlStep, ...]]  # table -> index builds (runnable side by side)
    attach: dict[str, tuple[str, ...]]  # table -> PRIMARY KEY / UNIQUE USING INDEX, after its builds
    foreign_keys: dict[str, tuple[ForeignKey, ...]]  # referencing table -> keys added after the load
    kept_foreign_keys: dict[str, tuple[ForeignKey, ...]]  # referencing table -> keys kept (rows proven after)
    triggers: tuple[DdlStep, ...]

    def constraints(self, table: str) -> set[str]:
        """The builds of ``table`` that are a key constraint's index (attached after being built)."""
        return {s.name for s in self.builds.get(table, ())
                if any(f"CONSTRAINT {quoted(s.name)} " in sql for sql in self.attach.get(table, ()))}


_INDEXES = """
SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid), k.conname, k.contype::text, c.relkind = 'p',
       pg_get_constraintdef(k.oid)
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid AND k.contype IN ('p', 'u', 'x')
 WHERE n.nspname = %(schema)s AND NOT c.relispartition AND NOT i.relispartition
 ORDER BY c.relname, i.relname
"""
_FOREIGN_KEYS = """
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid), f.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) u(num) JOIN pg_attribute a
               ON a.attrelid = k.conrelid AND a.attnum = u.num),
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) u(num) JOIN pg_attribute a
               ON a.attrelid = k.confrelid AND a.attnum = u.num)
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class f ON f.oid = k.confrelid
 WHERE n.nspname = %(schema)s AND k.contype = 'f' AND NOT c.relispartition AND k.conparentid = 0
 ORDER BY c.relname, k.conname
"""
_TRIGGERS = """
SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND NOT t.tgisinternal AND t.tgparentid = 0 AND NOT c.relispartition
 ORDER BY c.relname, t.tgname
"""


def quoted(name: str) -> str:
    """An identifier as SQL spells it whatever its case (``"Message_v2"``), for statements built from the catalog."""
    return '"' + name.replace('"', '""') + '"'


def load_ddl(
    conn: psycopg.Connection, *, keep_keys: Collection[str] = ("users", "conversations"), deferred: bool = True,
    schema_name: str = "public", tables: Collection[str] | None = None,
) -> LoadDdl:
    """Take the schema of ``conn``'s database apart for a bulk load (read-only: the caller runs ``strip``).

    Tables in ``keep_keys`` keep their primary key and unique constraints (small tables: foreign keys
    need them while the rows arrive); every other table's keys are built after the load, as unique
    indexes side by side and then attached (catalog only). With ``deferred`` the rows arrive without
    per-row trigger checks, so the foreign keys whose referenced key is kept stay (their rows are proven
    after the load); the others are dropped and added back after it. Only ``tables`` (default: all) are
    taken apart; a foreign key of another table is dropped only when the key it references is.
    """
    loaded = (lambda table: True) if tables is None else set(tables).__contains__
    p = {"schema": schema_name}
    index_drops: list[str] = []
    builds: dict[str, list[DdlStep]] = {}
    attach: dict[str, list[str]] = {}
    dropped_keys: set[tuple[str, str]] = set()  # (table, constraint) of dropped PK/UNIQUE constraints
    triggers = [DdlStep(name, table, definition) for table, name, definition in conn.execute(_TRIGGERS, p)
                if loaded(table)]
    trigger_drops = [f"DROP TRIGGER {quoted(t.name)} ON {quoted(t.table)}" for t in triggers]
    index_rows = conn.execute(_INDEXES, p).fetchall()
    foreign = conn.execute(_FOREIGN_KEYS, p).fetchall()
    for table, index, definition, constraint, kind, partitioned, condef in index_rows:
        if not loaded(table) or (constraint is not None and table in keep_keys):
            continue
        if constraint is None:
            builds.setdefault(table, []).append(DdlStep(index, table, definition.replace(" ON ONLY ", " ON ", 1)))
            index_drops.append(f"DROP INDEX {quoted(index)}")
            continue
        dropped_keys.add((table, constraint))
        if partitioned or kind == "x":  # no USING INDEX for a partitioned table: the constraint builds its own
            attach.setdefault(table, []).append(
                f"ALTER TABLE {quoted(table)} ADD CONSTRAINT {quoted(constraint)} {condef}")
        else:
            builds.setdefault(table, []).append(DdlStep(constraint, table, definition))
            what = "PRIMARY KEY" if kind == "p" else "UNIQUE"
            attach.setdefault(table, []).append(
                f"ALTER TABLE {quoted(table)} ADD CONSTRAINT {quoted(constraint)} {what} "
                f"USING INDEX {quoted(index)}")
    dropped_tables = {t for t, _ in dropped_keys}
    foreign_keys: dict[str, list[ForeignKey]] = {}
    kept: dict[str, list[ForeignKey]] = {}
    for table, name, definition, ref_table, columns, ref_columns in foreign:
        if not loaded(table) and ref_table not in dropped_tables:
            continue  # neither side is loaded nor loses its key: it stays as it is
        single = len(columns) == 1
        add = f"ALTER TABLE {quoted(table)} ADD CONSTRAINT {quoted(name)} {definition}"
        key = ForeignKey(DdlStep(name, table, add), table, name, columns[0] if single else "", ref_table,
                         ref_columns[0] if single else "")
        if deferred and single and ref_table not in dropped_tables:
            kept.setdefault(table, []).append(key)
        else:
            foreign_keys.setdefault(table, []).append(key)
    # Foreign keys go first (they depend on the keys), then the keys, then the indexes.
    fk_drops = [f"ALTER TABLE {quoted(k.table)} DROP CONSTRAINT {quoted(k.name)}"
                for keys in foreign_keys.values() for k in keys]
    key_drops = [f"ALTER TABLE {quoted(t)} DROP CONSTRAINT {quoted(c)}" for t, c in sorted(dropped_keys)]
    return LoadDdl(
        tuple(fk_drops + trigger_drops + key_drops + index_drops),
        {t: tuple(v) for t, v in builds.items()}, {t: tuple(v) for t, v in attach.items()},
        {t: tuple(v) for t, v in foreign_keys.items()}, {t: tuple(v) for t, v in kept.items()}, tuple(triggers),
    )


_OWN_OBJECTS = """
SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                      ELSE 'TABLE' END, format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND NOT c.relispartition
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
UNION ALL
SELECT 'FUNCTION', p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'TYPE', format('%I.%I', n.nspname, t.typname)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
"""


def drop_schema(conn: psycopg.Connection) -> None:
    """Remove what a previous load or schema left in ``public`` (the database is ours: the caller checked).

    Object by object rather than ``DROP SCHEMA public``: what extensions keep there (Citus's views,
    pgcrypto's functions) stays, as it would in the application's database.
    """
    for kind, name in conn.execute(_OWN_OBJECTS).fetchall():
        conn.execute(f"DROP {kind} IF EXISTS {name} CASCADE")


def create_bare(conninfo: str, package: SchemaPackage | None = None) -> None:
    """Every table bare (no key, index, foreign key or trigger): the raw-COPY benchmark's starting point."""
    with psycopg.connect(conninfo) as conn:
        drop_schema(conn)
        conn.commit()
    (package or schema_package.canonical()).apply(conninfo_url(conninfo))
    with psycopg.connect(conninfo) as conn:
        for sql in load_ddl(conn, keep_keys=(), deferred=False).strip:
            conn.execute(sql)


def conninfo_url(conninfo: str) -> str:
    """A SQLAlchemy URL (psycopg 3 driver) for a libpq conninfo string."""
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    host, port = params.pop("host", None), params.pop("port", None)
    user, password, dbname = params.pop("user", None), params.pop("password", None), params.pop("dbname", None)
    return URL.create("postgresql+psycopg", username=user, password=password, host=host,
                      port=int(port) if port else None, database=dbname, query=params).render_as_string(
        hide_password=False)


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


def set_sequences(conn: psycopg.Connection, tables: Sequence[str]) -> None:
    """Identity and serial sequences continue after the loaded values, so the application can insert."""
    for table in tables:
        rows = conn.execute(
            "SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "AND pg_get_serial_sequence(%s, a.attname) IS NOT NULL",
            (quoted(table), quoted(table), quoted(table)),
        ).fetchall()
        for column, sequence in rows:
            conn.execute(
                f"SELECT setval(%s, coalesce(max({quoted(column)}), 0) + 1, false) FROM {quoted(table)}",
                (sequence,),
            )
