"""``seed(server, spec)``: plan, COPY, build, verify, cache; the one entry point other stages call.

The load is arranged so that work overlaps instead of running in a row, and so that nothing scans
the big table more often than it must:

``plan``
    numpy skeleton + Faker pools; the message skeleton is spilled to bucket files (bounded memory).
    Render workers are forked first (small), and the empty tables are made meanwhile (``schema``):
    messages bare; users and conversations with their primary keys; the foreign keys too when the
    role may load with triggers off (see ``constraints``).
``copy``
    messages by one ``COPY ... FREEZE`` stream in the transaction that truncated the table (no
    WAL, rows frozen, pages all-visible, physical order = id order) fed by the render workers;
    beside it, on another connection, users and conversations (COPY), their other index, key,
    statistics and sequences (``small_tables_beside_copy``). A heap larger than memory on disk is
    dropped from the page cache behind the COPY (``dropbehind``).
``vacuum_analyze``
    VACUUM only finishes the few pages COPY did not mark all-visible (it skips the rest), so
    index-only scans work (``relallvisible = relpages``); ANALYZE samples the table once.
``indexes``
    the messages' primary key and indexes, built side by side on several connections, each with
    the maintenance memory and parallel workers the machine allows (``ddl.MaintenanceBudget``);
    beside them, VACUUM of users and conversations (only possible once the COPY committed).
``constraints``
    foreign keys and triggers. As superuser the foreign keys exist before the rows arrive and the
    COPY runs with ``session_replication_role = replica`` (no per-row trigger), and each key is then
    proven from what the load already built instead of re-scanning the table: the referenced ids
    are dense (``count = max - min + 1`` under a unique index) and the referencing column's range,
    read off its index, lies inside them. A key that cannot be proven so is checked by the same
    anti-join PostgreSQL runs; a violation fails the seed and drops the key. Without superuser the
    keys are added after the load and PostgreSQL validates them.
``sequences``, then ``verify`` (checksum + integrity) and ``cache_save`` when caching.

``timings["load"]`` is the wall time of everything before ``verify``. The database is never
cached unless the integrity check passed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import psycopg
from psycopg.conninfo import make_conninfo

from chatbench.convert import to_plain
from chatbench.errors import ChatbenchError, ConfigError, redact
from chatbench.loadgen import ddl, dropbehind
from chatbench.loadgen.cache import SeedCache, SnapshotStore, cache_key, store_for
from chatbench.loadgen.copy import RenderWorkers, copy_bytes, copy_messages
from chatbench.loadgen.encode import SMALL_ROWS, child_rows, conversation_rows, user_rows
from chatbench.loadgen.fields import INT8
from chatbench.loadgen.integrity import IntegrityError, check_integrity
from chatbench.loadgen.layout import Layouts, build_layouts, child_parents
from chatbench.loadgen.params import keyed, seed_parameters
from chatbench.loadgen.plan import DAY_US, ORDERS, Plan, RenderInputs, build_plan, chunk_slices, to_pg_us
from chatbench.loadgen.pools import Pools, build_pools
from chatbench.loadgen.progress import Reporter
from chatbench.loadgen.result import SeedParameters, SeedResult
from chatbench.loadgen.size import check_seed_space, estimate
from chatbench.loadgen.spec import Spec
from chatbench.loadgen.target import TargetSchema, read_target, schema_digest
from chatbench.provision.paths import memory_available
from chatbench.provision.server import Server
from chatbench.schema import package as schema_package
from chatbench.schema.package import SchemaPackage
from chatbench.schema.rolemap import CANONICAL, RoleMap

T = TypeVar("T")
CHUNK_ROWS = 50_000
INDEX_CONNECTIONS = 3  # the messages' three index builds at once (they share one SHARE lock mode)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _check_args(seed: int, workers: int, order: str, chunk_rows: int) -> None:
    if order not in ORDERS:
        raise ConfigError(f"--order {order!r} is not an order; use one of {', '.join(ORDERS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers {workers!r}: must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed {seed!r}: must be an integer >= 0")
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows {chunk_rows!r}: must be >= 1")


def seed(
    server: Server,
    spec: Spec,
    *,
    seed: int = 0,
    workers: int | None = None,
    order: str = "time",
    use_cache: bool = True,
    progress: bool = True,
    chunk_rows: int = CHUNK_ROWS,
    package: SchemaPackage | None = None,
    prebuilt: bool = False,
    roles: RoleMap = CANONICAL,
) -> SeedResult:
    """Fill ``server``'s database with the history ``spec`` describes (or restore it from the cache).

    The schema is ``package``'s (the canonical models by default), created here, or with ``prebuilt``
    the one already in the database (the application's migrations built it): every table of it is
    filled. ``roles`` (``[tool.chatbench.map]``, read where verify reads it) names the application's
    tables and columns that take the history's rows; the canonical models need none, so it is used
    only for the application's schema (``prebuilt``, or ``--models``). Refuses a database chatbench did
    not create unless the user allowed destructive work. The result is equal (checksum included) for
    equal (schema, map, spec, seed, order) whatever ``workers`` is.
    """
    server.require_destructive("seed")
    workers = default_workers() if workers is None else workers
    _check_args(seed, workers, order, chunk_rows)
    package = package or schema_package.canonical()
    roles = CANONICAL if package.canonical and not prebuilt else roles
    key = cache_key(server, spec, seed, order, schema=_schema_identity(server, package, prebuilt), roles=roles)
    store = store_for(server) if use_cache else None
    if store is not None:
        hit = store.fetch(server, key)
        if hit is not None:
            return hit
    check_seed_space(
        spec,
        cluster_dir=server.cluster.root if server.cluster is not None else None,
        snapshot_dir=store.root if isinstance(store, SnapshotStore) else None,
    )
    result = seed_fresh(server, spec, seed=seed, workers=workers, order=order, progress=progress,
                        chunk_rows=chunk_rows, key=key, package=package, prebuilt=prebuilt, roles=roles)
    if store is not None:
        result = _save(store, server, key, result)
    return result


def _schema_identity(server: Server, package: SchemaPackage, prebuilt: bool) -> str:
    """What the seed cache keys the schema by: the package's fingerprint, or the built schema's catalog."""
    if not prebuilt:
        return package.fingerprint()
    with psycopg.connect(server.conninfo()) as conn:
        return "catalog:" + schema_digest(conn)


def _save(store: SeedCache, server: Server, key: str, result: SeedResult) -> SeedResult:
    """Publish a verified seed; a cache that cannot be written (no CREATEDB, full disk) is not fatal."""
    started = time.perf_counter()
    try:
        store.save(server, key, result)
        status = store.kind
    except (psycopg.Error, OSError) as exc:
        status = f"not saved: {redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)}"
        print(f"seed cache ({store.kind}) {status}", file=sys.stderr)
    timings = {**result.timings, "cache_save": time.perf_counter() - started}
    return replace(result, timings=timings, extra={**result.extra, "cache": status})


def vacuum_until_visible(conn: psycopg.Connection, tables: tuple[str, ...], *, settle_seconds: float = 5.0) -> None:
    """VACUUM until the visibility map covers each table: index-only scans then read no heap page.

    After ``COPY FREEZE`` (PostgreSQL 14+) nearly every page is already all-visible and VACUUM only
    visits the few COPY left unmarked. Measured before FREEZE was used: right after a bulk load
    committed with synchronous_commit=off, VACUUM set no page all-visible (0 of 920) for a few hundred
    milliseconds, because hint bits of an asynchronously committed transaction wait for its WAL flush.
    count(*) then became a bitmap heap scan instead of an index-only scan, and plan contracts and
    buffer budgets judged a state no real table stays in. So VACUUM is repeated (cheap: it skips pages
    already all-visible) until relallvisible reaches the table's pages or ``settle_seconds`` pass
    (``seed_fresh`` commits synchronously, so one pass is the rule). INDEX_CLEANUP ON keeps VACUUM
    from skipping index cleanup, which would leave pages not all-visible. Run ANALYZE after it: it
    sets relpages and relallvisible together. ``conn`` must be in autocommit mode. ``tables`` are names as the
    catalog spells them (quoted here: an application's "Message" keeps its capital).
    """
    deadline = time.monotonic() + settle_seconds
    for name in tables:
        table = ddl.quoted(name)
        before: tuple[int, int] | None = None
        while True:
            conn.execute(f"VACUUM (INDEX_CLEANUP ON) {table}")
            # The file's pages, not pg_class.relpages (VACUUM may truncate the empty pages a bulk load's
            # extension left at the end after counting them); ANALYZE then sets both numbers.
            pages, visible = conn.execute(
                "SELECT pg_relation_size(oid) / current_setting('block_size')::int, relallvisible "
                "FROM pg_class WHERE oid = %s::regclass", (table,)
            ).fetchone() or (0, 0)
            if visible >= pages or time.monotonic() > deadline:
                break
            if before == (pages, visible):
                time.sleep(0.05)  # no progress: wait for whatever holds it back
            before = (pages, visible)


def created_at_correlation(conn: psycopg.Connection, table: str = "messages", column: str = "created_at") -> float:
    """pg_stats' correlation of the messages' time column (``table``/``column``: the ones playing the role)."""
    row = conn.execute(
        "SELECT correlation FROM pg_stats WHERE schemaname = current_schema() AND tablename = %s AND attname = %s",
        (table, column),
    ).fetchone()
    return float(row[0]) if row is not None and row[0] is not None else float("nan")


def _can_defer_triggers(conninfo: str) -> bool:
    """Whether this role may load with ``session_replication_role = replica`` (superuser only)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('is_superuser')").fetchone()
    return row is not None and row[0] == "on"


class _Background(Generic[T]):
    """Run a function on a thread; ``join()`` returns what it returned, or re-raises what it raised."""

    def __init__(self, target: Callable[[], T]) -> None:
        self._error: BaseException | None = None
        self._value: T | None = None
        self.seconds = 0.0

        def run() -> None:
            started = time.perf_counter()
            try:
                self._value = target()
            except BaseException as exc:
                self._error = exc
            self.seconds = time.perf_counter() - started

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> T:
        """Wait; its value, or its error raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was raised

    def wait(self) -> None:
        """Wait, ignoring its error (another error is already on its way)."""
        self._thread.join()


@dataclass(frozen=True)
class _Prepared:
    """The built schema, read and taken apart for the load: what the rest of the seed fills and puts back."""

    target: TargetSchema
    steps: ddl.LoadDdl
    layouts: Layouts


def _prepare_schema(conninfo: str, spec: Spec, package: SchemaPackage, prebuilt: bool, deferred: bool,
                    roles: RoleMap) -> _Prepared:
    """Build the schema (unless ``prebuilt``: the application built it), read it, and strip it for the load.

    The schema is created whole, as its package (or the application's migrations) creates it, and
    then taken apart by the catalog's own definitions (``ddl.load_ddl``), so what the load puts back
    is exactly what was built, whatever the schema.
    """
    if not prebuilt:
        with psycopg.connect(conninfo) as conn:
            ddl.drop_schema(conn)
        package.apply(ddl.conninfo_url(conninfo))
    with psycopg.connect(conninfo) as conn:
        target = read_target(conn, keep_filled=prebuilt, roles=roles)
        layouts = build_layouts(target, spec, {"users": spec.users.count,
                                               "conversations": spec.conversations.count,
                                               "messages": spec.messages.count})
        steps = ddl.load_ddl(conn, keep_keys=(layouts.users.table, layouts.conversations.table), deferred=deferred,
                             tables=layouts.tables)
        for sql in steps.strip:
            conn.execute(sql)
        for table in layouts.tables:  # a pre-built schema may hold rows already (a reused database)
            conn.execute(f'TRUNCATE "{table}" CASCADE')
    return _Prepared(target, steps, layouts)


def _load_small_tables(conninfo: str, plan: Plan, pools: Pools, prepared: _Prepared, deferred: bool) -> None:
    """While messages load: users and conversations, their other indexes, keys, sequences.

    Their pages become all-visible only in ``_finish_small_tables``: VACUUM cannot mark rows visible
    to all while the messages' COPY transaction, older than them, is still open.
    """
    counts, layouts, steps = plan.counts, prepared.layouts, prepared.steps
    with psycopg.connect(conninfo) as conn:
        if deferred:
            conn.execute("SET LOCAL session_replication_role = replica")
        for role, render in (("users", user_rows), ("conversations", conversation_rows)):
            layout = layouts.role(role)
            blocks = chunk_slices(counts[role], SMALL_ROWS)
            copy_bytes(conn, layout.copy_statement(),
                       (render(plan, pools, lo, hi, layout) for lo, hi in blocks))
    small = (layouts.users.table, layouts.conversations.table)
    builds = [s for t in small for s in steps.builds.get(t, ())]
    ddl.run_parallel(conninfo, builds, 1, ddl.MaintenanceBudget.for_machine(2, rows=counts["conversations"]))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in small:
            for sql in steps.attach.get(table, ()):
                conn.execute(sql)
        # only the keys to rows that exist now: one to a table loaded later (a folder) waits for its rows
        _put_back_foreign_keys(conn, steps, layouts.conversations.table, to=small)
        ddl.set_sequences(conn, small)


def _put_back_foreign_keys(conn: psycopg.Connection, steps: ddl.LoadDdl, table: str, *,
                           to: Collection[str] | None = None, but: Collection[str] = ()) -> None:
    """``table``'s foreign keys after its rows arrived: kept ones proven, dropped ones added (validated); only
    those referencing a table of ``to`` (None: any) and none of ``but``."""
    def wanted(key: ddl.ForeignKey) -> bool:
        return (to is None or key.ref_table in to) and key.ref_table not in but

    _prove_foreign_keys(conn, tuple(k for k in steps.kept_foreign_keys.get(table, ()) if wanted(k)))
    for fk in steps.foreign_keys.get(table, ()):
        if wanted(fk):
            conn.execute(fk.step.sql)


def _finish_small_tables(conninfo: str, tables: tuple[str, ...]) -> None:
    """Visibility map, then statistics (ANALYZE records relpages and relallvisible as VACUUM left them)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        vacuum_until_visible(conn, tables)
        for table in tables:
            conn.execute(f'ANALYZE "{table}"')


def _load_children(conninfo: str, prepared: _Prepared, spec: Spec, seed: int, pools: Pools, deferred: bool,
                   message_times: np.ndarray | None) -> None:
    """Every table beyond the history's, each by one COPY FREEZE in the transaction that truncated it."""
    t0 = to_pg_us(spec.start_datetime)
    span = (t0, t0 + spec.time.days * DAY_US)
    for child in prepared.layouts.children:
        parents = child_parents(child, seed)
        layout = child.layout
        with psycopg.connect(conninfo) as conn:
            if deferred:
                conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(f'TRUNCATE "{layout.table}"')
            freeze = layout.table not in prepared.layouts.partitioned
            copy_bytes(conn, layout.copy_statement(freeze=freeze),
                       (child_rows(layout, seed, parents[lo:hi], lo, pools.contents, span, message_times)
                        for lo, hi in chunk_slices(child.rows, SMALL_ROWS)))


def _prove_foreign_keys(conn: psycopg.Connection, keys: tuple[ddl.ForeignKey, ...]) -> None:
    """Check keys whose rows were loaded with triggers off; a violated key is dropped and the seed fails.

    Referenced ids that are dense (count = max - min + 1 under the unique index a foreign key needs)
    contain every integer of their range, so a referencing column whose min and max (two index
    probes) lie in that range references existing rows only. Otherwise the anti-join that
    PostgreSQL's own validation runs counts the orphans.
    """
    for key in keys:
        table, column = ddl.quoted(key.table), ddl.quoted(key.column)
        ref_table, ref_column = ddl.quoted(key.ref_table), ddl.quoted(key.ref_column)
        kind = conn.execute(
            "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
            (ref_table, key.ref_column),
        ).fetchone()
        if kind is not None and kind[0] in ("smallint", "integer", "bigint"):
            ref = conn.execute(f"SELECT count(*), min({ref_column}), max({ref_column}) FROM {ref_table}").fetchone()
            low_high = conn.execute(f"SELECT min({column}), max({column}) FROM {table}").fetchone()
            assert ref is not None and low_high is not None
            count, low, high = ref
            dense = count == 0 or high - low + 1 == count
            if dense and (low_high[0] is None or (count and low <= low_high[0] and low_high[1] <= high)):
                continue
        orphans = conn.execute(
            f"SELECT count(*) FROM {table} f LEFT JOIN {ref_table} r ON r.{ref_column} = f.{column} "
            f"WHERE f.{column} IS NOT NULL AND r.{ref_column} IS NULL"
        ).fetchone()
        if orphans is not None and orphans[0]:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {ddl.quoted(key.name)}")
            raise IntegrityError(
                f"integrity FAILED: foreign key {key.name}: {orphans[0]} rows of {key.table} reference no "
                f"{key.ref_table} row (the seed is not cached)"
            )


@contextmanager
def _dropping_behind(server: Server, spec: Spec, conn: psycopg.Connection,
                     table: str | None) -> Iterator[dropbehind.DropBehind | None]:
    """While ``conn``'s COPY writes the messages' heap: bound its page cache when the heap is larger
    than memory (see ``dropbehind``); None when it is left to the OS. Not while the index builds read
    it: their scans run apart and what lies between them must stay cached or be read twice (see
    docs/design.md). A partitioned table is written through its leaves: left to the OS."""
    data_dir = server.cluster.data if server.cluster is not None else None
    heap, available = estimate(spec).tables, memory_available()
    if data_dir is None or table is None or not dropbehind.wanted(data_dir, heap, available):
        yield None
        return
    expected, warm = dropbehind.warm_budget(heap, available)
    with dropbehind.DropBehind(data_dir, dropbehind.relation_path(conn, table), expected, warm) as dropping:
        yield dropping


def _skeleton_scratch(server: Server) -> Path | None:
    """Where the message skeleton is spilled: in the local cluster's directory (on the file system the
    size check chose, removed with it), else the run directory."""
    return server.cluster.root if server.cluster is not None else None


class SeedRejected(ChatbenchError):
    """The schema refused rows the generator made for it (a CHECK, unique or foreign key it cannot satisfy)."""


@contextmanager
def _rejections() -> Iterator[None]:
    """A constraint of the schema that refuses the generated rows is one line naming it, not a traceback."""
    try:
        yield
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
        diag = exc.diag
        where = ".".join(x for x in (diag.table_name, diag.column_name) if x) or "the schema"
        what = f"constraint {diag.constraint_name}" if diag.constraint_name else "it"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SeedRejected(
            f"seeding {where}: {what} refused the generated rows ({first}); chatbench fills a column by its type, "
            "CHECK IN lists, bounds and length limits: give the column a DEFAULT, or simplify the constraint"
        ) from None


def seed_fresh(
    server: Server,
    spec: Spec,
    *,
    seed: int,
    workers: int,
    order: str,
    progress: bool,
    chunk_rows: int = CHUNK_ROWS,
    key: str = "",
    package: SchemaPackage | None = None,
    prebuilt: bool = False,
    roles: RoleMap = CANONICAL,
) -> SeedResult:
    """Seed without the cache (the caller checked permission and arguments): the history copied, then
    the child tables, the indexes, constraints and triggers put back, sequences set, and the result
    verified."""
    # Every transaction of the load commits synchronously (with fsync=off it costs a write(), not a
    # sync). Asynchronous commits kept VACUUM from marking rows visible for up to the WAL writer's
    # delay (see ``vacuum_until_visible``).
    conninfo = make_conninfo(server.conninfo(), options="-c synchronous_commit=on")
    package = package or schema_package.canonical()
    started = time.perf_counter()
    with _rejections(), Reporter(progress) as report:
        deferred = _can_defer_triggers(conninfo)
        pools = build_pools(spec.locales, spec.non_ascii_share, seed, spec.content)
        copied = _copy_history(server, spec, conninfo, report, pools, package, prebuilt, deferred, roles,
                               seed=seed, workers=workers, order=order, chunk_rows=chunk_rows)
        layouts = copied.prepared.layouts
        messages = layouts.messages.table
        with report.phase("vacuum_analyze"), psycopg.connect(conninfo, autocommit=True) as conn:
            vacuum_until_visible(conn, (messages,))
            conn.execute(f'ANALYZE "{messages}"')
        with report.phase("children"):
            _load_children(conninfo, copied.prepared, spec, seed, pools, deferred, copied.plan.message_times)
        big = (messages, *(c.layout.table for c in layouts.children))
        with report.phase("indexes"):
            built = _build_indexes(conninfo, copied.prepared, big, spec.messages.count)
        with report.phase("constraints"):
            _put_back_constraints(conninfo, copied.prepared, big)
        with report.phase("sequences"):
            _finish_sequences_and_children(conninfo, big)
        load = time.perf_counter() - started
        params = keyed(copied.plan.params, layouts.codecs.get(layouts.users.table, INT8),
                       layouts.codecs.get(layouts.conversations.table, INT8), layouts.codecs.get(messages, INT8))
        children = {c.layout.table: c.rows for c in layouts.children}
        with report.phase("verify"):
            integrity = check_integrity(server, spec, whales={w.conversation_id: w.messages for w in params.whales},
                                        children=children, roles=roles)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                correlation = created_at_correlation(conn, messages, layouts.messages.column_name("created_at"))
    timings = {**report.timings, "plan": copied.plan.seconds, "plan_and_small_tables_beside_copy":
               copied.beside_seconds, "load": load}
    return SeedResult(
        database=server.database, profile=spec.name, spec=to_plain(spec), seed=seed, order=order,
        counts={**copied.plan.counts, **children}, checksum=integrity.checksum, timings=timings, from_cache=False,
        cache_key=key, created_at_correlation=correlation, params=params,
        extra={"workers": workers, "chunk_rows": chunk_rows, "buckets": copied.plan.buckets,
               "integrity_checks": len(integrity.checks),
               "schema": package.name if not prebuilt else "pre-built",
               "page_cache": f"dropped behind the COPY ({copied.dropping[0]} segment drops), "
                             f"{copied.dropping[1]} head segments read back" if copied.dropping
                             else "left to the OS",
               "foreign_keys": "proven" if deferred else "validated",
               "index_builds": f"{built.count} at once, maintenance_work_mem {built.budget.work_mem_mb} MB and "
                               f"{built.budget.parallel_workers} parallel workers each"},
    )


@dataclass(frozen=True)
class _IndexBuilds:
    count: int  # index builds run at once on the loaded tables
    budget: ddl.MaintenanceBudget


def _build_indexes(conninfo: str, prepared: _Prepared, big: tuple[str, ...], messages: int) -> _IndexBuilds:
    """The loaded tables' indexes, built in parallel on several connections, while the small tables (users,
    conversations) are finished beside them."""
    layouts, steps = prepared.layouts, prepared.steps
    small = _Background(lambda: _finish_small_tables(conninfo, (layouts.users.table, layouts.conversations.table)))
    builds = [s for t in big for s in steps.builds.get(t, ())]
    budget = ddl.MaintenanceBudget.for_machine(len(steps.builds.get(big[0], ())) or 1, rows=messages)
    try:
        ddl.run_parallel(conninfo, builds, INDEX_CONNECTIONS, budget)
    finally:
        small.join()
    return _IndexBuilds(len(builds), budget)


def _put_back_constraints(conninfo: str, prepared: _Prepared, big: tuple[str, ...]) -> None:
    """Partitions attached, every table's foreign keys (loaded or not) and the triggers put back, as the
    catalog defined them before the load."""
    layouts, steps = prepared.layouts, prepared.steps
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in big:
            for sql in steps.attach.get(table, ()):
                conn.execute(sql)
        small = (layouts.users.table, layouts.conversations.table)
        for table in sorted({*steps.foreign_keys, *steps.kept_foreign_keys}):
            # the conversations' keys to users and conversations went back with their rows (_load_small_tables)
            _put_back_foreign_keys(conn, steps, table, but=small if table == layouts.conversations.table else ())
        for step in steps.triggers:
            conn.execute(step.sql)


def _finish_sequences_and_children(conninfo: str, big: tuple[str, ...]) -> None:
    """Sequences set past the loaded keys; the child tables vacuumed until visible and analysed (the
    messages table was, before its indexes)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        ddl.set_sequences(conn, big)
        if len(big) > 1:
            vacuum_until_visible(conn, big[1:])
            for table in big[1:]:
                conn.execute(f'ANALYZE "{table}"')


@dataclass(frozen=True)
class _PlanFacts:
    """What the seed keeps of the plan once its skeleton is gone."""

    counts: dict[str, int]
    params: SeedParameters
    buckets: int
    seconds: float
    # every message's created_at by row number (8 bytes a message), kept only when a child table's foreign
    # key names a message by (id, created_at): the messages table is partitioned by time
    message_times: np.ndarray | None = None


def _names_message_times(layouts: Layouts) -> bool:
    return any(fill.kind == "message_time" for child in layouts.children for fill in child.layout.extras)


@dataclass(frozen=True)
class _Copied:
    prepared: _Prepared
    plan: _PlanFacts
    beside_seconds: float
    dropping: tuple[int, int] | None  # (segment drops, head segments read back) when the COPY dropped behind


def _copy_history(server: Server, spec: Spec, conninfo: str, report: Reporter, pools: Pools, package: SchemaPackage,
                  prebuilt: bool, deferred: bool, roles: RoleMap, *, seed: int, workers: int, order: str,
                  chunk_rows: int) -> _Copied:
    """Schema, plan and the messages' COPY at once: render workers forked first (small), the schema
    prepared and the plan drawn beside the COPY (its buckets go to the workers as they complete), then
    users and conversations on another connection."""
    with RenderWorkers(pools, workers, chunk_rows) as renderers:  # forked small: before the plan exists
        # No thread runs before the fork.
        schema_made = _Background(lambda: _prepare_schema(conninfo, spec, package, prebuilt, deferred, roles))

        def start_rendering(inputs: RenderInputs, where: Path) -> None:
            # the messages' layout comes from the schema
            renderers.start(inputs, where, order == "time", schema_made.join().layouts.messages)

        def plan_then_small_tables() -> _PlanFacts:
            drawing = time.perf_counter()
            try:
                plan = build_plan(spec, seed, order, scratch=_skeleton_scratch(server), on_inputs=start_rendering,
                                  on_bucket=renderers.bucket_ready)
            except BaseException as exc:
                renderers.failed(exc)
                raise
            plans.append(plan)  # closed here once the workers are done with its skeleton, whatever happens
            renderers.done()
            layouts = schema_made.join().layouts
            facts = _PlanFacts(dict(plan.counts), seed_parameters(plan), plan.skeleton.buckets,
                               time.perf_counter() - drawing,
                               plan.skeleton.load_all().time if _names_message_times(layouts) else None)
            _load_small_tables(conninfo, plan, pools, schema_made.join(), deferred)
            return facts

        plans: list[Plan] = []
        beside = _Background(plan_then_small_tables)
        dropped: tuple[int, int] | None = None
        try:
            with report.phase("schema"):
                prepared = schema_made.join()
            layout = prepared.layouts.messages
            partitioned = layout.table in prepared.layouts.partitioned
            with report.phase("copy", total=spec.messages.count) as bar, psycopg.connect(conninfo) as conn:
                # FREEZE needs the table truncated (or created) in this transaction; a partitioned table
                # takes no FREEZE, but its leaves truncated here are still written without WAL.
                conn.execute(f'TRUNCATE "{layout.table}"')
                if deferred:
                    conn.execute("SET LOCAL session_replication_role = replica")
                with _dropping_behind(server, spec, conn, None if partitioned else layout.table) as dropping, \
                        conn.cursor() as cur, cur.copy(layout.copy_statement(freeze=not partitioned)) as copy:
                    copy_messages(copy, renderers, bar.advance)
                dropped = (dropping.dropped, dropping.warmed) if dropping else None
        except BaseException:
            renderers.close()  # stops the plan at its next bucket
            beside.wait()
            schema_made.wait()
            for plan in plans:
                plan.close()
            raise
        try:
            facts = beside.join()
        finally:
            for plan in plans:
                plan.close()  # the workers are done with the skeleton
    return _Copied(prepared, facts, beside.seconds, dropped)
