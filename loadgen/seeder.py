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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from chatbench.loadgen import ddl, dropbehind
from chatbench.loadgen.cache import SeedCache, SnapshotStore, cache_key, store_for
from chatbench.loadgen.copy import RenderWorkers, copy_bytes, copy_messages
from chatbench.loadgen.encode import (
    CONVERSATIONS_COPY,
    MESSAGES_COPY,
    SMALL_ROWS,
    USERS_COPY,
    conversation_rows,
    user_rows,
)
from chatbench.loadgen.integrity import IntegrityError, check_integrity
from chatbench.loadgen.params import seed_parameters
from chatbench.loadgen.plan import ORDERS, Plan, build_plan, chunk_slices
from chatbench.loadgen.pools import Pools, build_pools
from chatbench.loadgen.progress import Reporter
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.size import check_seed_space, estimate
from chatbench.loadgen.spec import Spec
from psycopg.conninfo import make_conninfo

from chatbench.errors import ConfigError
from chatbench.provision.paths import memory_available
from chatbench.provision.server import Server

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
) -> SeedResult:
    """Fill ``server``'s database with the history ``spec`` describes (or restore it from the cache).

    Refuses a database chatbench did not create unless the user allowed destructive work. The
    result is equal (checksum included) for equal (spec, seed, order) whatever ``workers`` is.
    """
    server.require_destructive("seed")
    workers = default_workers() if workers is None else workers
    _check_args(seed, workers, order, chunk_rows)
    key = cache_key(server, spec, seed, order)
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
                        chunk_rows=chunk_rows, key=key)
    if store is not None:
        result = _save(store, server, key, result)
    return result


def _save(store: SeedCache, server: Server, key: str, result: SeedResult) -> SeedResult:
    """Publish a verified seed; a cache that cannot be written (no CREATEDB, full disk) is not fatal."""
    import sys
    from dataclasses import replace

    from chatbench.errors import redact

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
    sets relpages and relallvisible together. ``conn`` must be in autocommit mode.
    """
    deadline = time.monotonic() + settle_seconds
    for table in tables:
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


def created_at_correlation(conn: psycopg.Connection) -> float:
    row = conn.execute(
        "SELECT correlation FROM pg_stats WHERE schemaname = current_schema() "
        "AND tablename = 'messages' AND attname = 'created_at'"
    ).fetchone()
    return float(row[0]) if row is not None and row[0] is not None else float("nan")


def _can_defer_triggers(conninfo: str) -> bool:
    """Whether this role may load with ``session_replication_role = replica`` (superuser only)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('is_superuser')").fetchone()
    return row is not None and row[0] == "on"


class _Background:
    """Run a function on a thread; ``join()`` re-raises what it raised."""

    def __init__(self, target: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self.seconds = 0.0

        def run() -> None:
            started = time.perf_counter()
            try:
                target()
            except BaseException as exc:
                self._error = exc
            self.seconds = time.perf_counter() - started

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self, *, quiet: bool = False) -> None:
        """Wait; re-raise its error unless ``quiet`` (another error is already on its way)."""
        self._thread.join()
        if self._error is not None and not quiet:
            raise self._error


def _create_schema(conninfo: str, steps: ddl.LoadDdl, deferred: bool) -> None:
    """Every table, empty: messages bare (no keys while loading); users and conversations with their
    primary keys (a foreign key needs them). With ``deferred``, the foreign keys too: the rows then
    arrive in replica mode, without per-row checks, and ``_prove_foreign_keys`` checks them after.
    """
    keep = set(steps.attach.get("conversations", ()))  # built on the empty table: ids arrive in order
    with psycopg.connect(conninfo) as conn:
        ddl.drop_schema(conn)
        for sql in steps.functions:
            conn.execute(sql)
        for table in ("users", "conversations", "messages"):
            for sql in steps.create[table]:
                if table == "conversations" and keep and "DROP CONSTRAINT" in sql:
                    continue
                conn.execute(sql)
            if deferred:
                for fk in steps.foreign_keys.get(table, ()):
                    conn.execute(fk.step.sql)


def _load_small_tables(conninfo: str, plan: Plan, pools: Pools, steps: ddl.LoadDdl, deferred: bool) -> None:
    """While messages load: users and conversations, their other indexes, keys, sequences.

    Their pages become all-visible only in ``_finish_small_tables``: VACUUM cannot mark rows visible
    to all while the messages' COPY transaction, older than them, is still open.
    """
    counts = plan.counts
    with psycopg.connect(conninfo) as conn:
        if deferred:
            conn.execute("SET LOCAL session_replication_role = replica")
        for table, statement, render in (
            ("users", USERS_COPY, user_rows),
            ("conversations", CONVERSATIONS_COPY, conversation_rows),
        ):
            blocks = chunk_slices(counts[table], SMALL_ROWS)
            copy_bytes(conn, statement, (render(plan, pools, lo, hi) for lo, hi in blocks))
    attached = {sql.rsplit(" ", 1)[-1] for sql in steps.attach.get("conversations", ())}
    builds = [s for t in ("users", "conversations") for s in steps.builds.get(t, ()) if s.name not in attached]
    ddl.run_parallel(conninfo, builds, 1, ddl.MaintenanceBudget.for_machine(2, rows=plan.counts["conversations"]))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if deferred:
            _prove_foreign_keys(conn, steps.foreign_keys.get("conversations", ()))
        else:
            for fk in steps.foreign_keys.get("conversations", ()):
                conn.execute(fk.step.sql)
        ddl.set_sequences(conn, ("users", "conversations"))


def _finish_small_tables(conninfo: str) -> None:
    """Visibility map, then statistics (ANALYZE records relpages and relallvisible as VACUUM left them)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        vacuum_until_visible(conn, ("users", "conversations"))
        conn.execute("ANALYZE users")
        conn.execute("ANALYZE conversations")


def _prove_foreign_keys(conn: psycopg.Connection, keys: tuple[ddl.ForeignKey, ...]) -> None:
    """Check keys whose rows were loaded with triggers off; a violated key is dropped and the seed fails.

    Referenced ids that are dense (count = max - min + 1 under the unique index a foreign key needs)
    contain every integer of their range, so a referencing column whose min and max (two index
    probes) lie in that range references existing rows only. Otherwise the anti-join that
    PostgreSQL's own validation runs counts the orphans.
    """
    for key in keys:
        ref = conn.execute(
            f"SELECT count(*), min({key.ref_column}), max({key.ref_column}), "
            f"pg_typeof(min({key.ref_column}))::text FROM {key.ref_table}"
        ).fetchone()
        low_high = conn.execute(f"SELECT min({key.column}), max({key.column}) FROM {key.table}").fetchone()
        assert ref is not None and low_high is not None
        count, low, high, kind = ref
        dense = kind in ("smallint", "integer", "bigint") and (count == 0 or high - low + 1 == count)
        if dense and (low_high[0] is None or (count and low <= low_high[0] and low_high[1] <= high)):
            continue
        orphans = conn.execute(
            f"SELECT count(*) FROM {key.table} f LEFT JOIN {key.ref_table} r ON r.{key.ref_column} = f.{key.column} "
            f"WHERE f.{key.column} IS NOT NULL AND r.{key.ref_column} IS NULL"
        ).fetchone()
        if orphans is not None and orphans[0]:
            conn.execute(f"ALTER TABLE {key.table} DROP CONSTRAINT {key.name}")
            raise IntegrityError(
                f"integrity FAILED: foreign key {key.name}: {orphans[0]} rows of {key.table} reference no "
                f"{key.ref_table} row (the seed is not cached)"
            )


@contextmanager
def _dropping_behind(server: Server, spec: Spec, conn: psycopg.Connection) -> Iterator[dropbehind.DropBehind | None]:
    """While ``conn``'s COPY writes the messages' heap: bound its page cache when the heap is larger
    than memory (see ``dropbehind``); None when it is left to the OS. Not while the index builds read
    it: their scans run apart (the primary key's races ahead) and what lies between them must stay
    cached or be read twice; dropping behind the slowest scan as well measured no faster at 10^8
    (indexes 98.7 s against 98.6 s) and left the integrity check reading from disk (71.8 s against 68.9 s)."""
    data_dir = server.cluster.data if server.cluster is not None else None
    heap, available = estimate(spec).tables, memory_available()
    if data_dir is None or not dropbehind.wanted(data_dir, heap, available):
        yield None
        return
    expected, warm = dropbehind.warm_budget(heap, available)
    with dropbehind.DropBehind(data_dir, dropbehind.relation_path(conn, "messages"), expected, warm) as dropping:
        yield dropping


def _skeleton_scratch(server: Server) -> Path | None:
    """Where the message skeleton is spilled: in the local cluster's directory (on the file system the
    size check chose, removed with it), else the run directory."""
    return server.cluster.root if server.cluster is not None else None


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
) -> SeedResult:
    """Seed without the cache (the caller checked permission and arguments)."""
    # Every transaction of the load commits synchronously (with fsync=off it costs a write(), not a
    # sync). Asynchronous commits kept VACUUM from marking rows visible for up to the WAL writer's
    # delay: a hint bit waits until the WAL of every transaction sharing the xid's commit-log LSN group
    # is flushed, and concurrent builds and ANALYZE committed asynchronously kept raising that LSN.
    conninfo = make_conninfo(server.conninfo(), options="-c synchronous_commit=on")
    steps = ddl.load_ddl()
    started = time.perf_counter()
    with Reporter(progress) as report:
        deferred = _can_defer_triggers(conninfo)
        pools = build_pools(spec.locales, spec.non_ascii_share, seed)
        drawn: list[Plan] = []
        plan_seconds: list[float] = []
        with RenderWorkers(pools, workers, chunk_rows) as renderers:  # forked small: before the plan exists
            # No thread runs before the fork. Beside the COPY: the empty tables, then the plan (its
            # buckets go to the workers as they complete), then users and conversations.
            schema_made = _Background(lambda: _create_schema(conninfo, steps, deferred))

            def plan_then_small_tables() -> None:
                drawing = time.perf_counter()
                try:
                    plan = build_plan(
                        spec, seed, order, scratch=_skeleton_scratch(server),
                        on_inputs=lambda inputs, where: renderers.start(inputs, where, order == "time"),
                        on_bucket=renderers.bucket_ready,
                    )
                except BaseException as exc:
                    renderers.failed(exc)
                    raise
                drawn.append(plan)
                renderers.done()
                plan_seconds.append(time.perf_counter() - drawing)
                schema_made.join()
                _load_small_tables(conninfo, plan, pools, steps, deferred)

            beside = _Background(plan_then_small_tables)
            try:
                with report.phase("schema"):
                    schema_made.join()
                with report.phase("copy", total=spec.messages.count) as bar, psycopg.connect(conninfo) as conn:
                    conn.execute("TRUNCATE messages")  # FREEZE needs the table truncated (or created) here
                    if deferred:
                        conn.execute("SET LOCAL session_replication_role = replica")
                    freeze = MESSAGES_COPY.replace("(FORMAT BINARY)", "(FORMAT BINARY, FREEZE)")
                    with _dropping_behind(server, spec, conn) as dropping, conn.cursor() as cur, \
                            cur.copy(freeze) as copy:
                        copy_messages(copy, renderers, bar.advance)
            except BaseException:
                renderers.close()  # stops the plan at its next bucket
                beside.join(quiet=True)
                for plan in drawn:
                    plan.close()
                raise
            try:
                beside.join()
            finally:
                for plan in drawn:
                    plan.close()  # the workers are done with the skeleton
        plan = drawn[0]
        counts = plan.counts
        with report.phase("vacuum_analyze"), psycopg.connect(conninfo, autocommit=True) as conn:
            vacuum_until_visible(conn, ("messages",))
            conn.execute("ANALYZE messages")
        with report.phase("indexes"):
            small = _Background(lambda: _finish_small_tables(conninfo))
            builds = steps.builds.get("messages", ())
            budget = ddl.MaintenanceBudget.for_machine(len(builds), rows=counts["messages"])
            try:
                ddl.run_parallel(conninfo, builds, INDEX_CONNECTIONS, budget)
            finally:
                small.join()
        with report.phase("constraints"), psycopg.connect(conninfo, autocommit=True) as conn:
            for sql in steps.attach.get("messages", ()):
                conn.execute(sql)
            if deferred:
                _prove_foreign_keys(conn, steps.foreign_keys.get("messages", ()))
            else:
                for fk in steps.foreign_keys.get("messages", ()):
                    conn.execute(fk.step.sql)
            for step in steps.triggers:
                conn.execute(step.sql)
        with report.phase("sequences"), psycopg.connect(conninfo, autocommit=True) as conn:
            ddl.set_sequences(conn, ("messages",))
        load = time.perf_counter() - started
        params = seed_parameters(plan)
        with report.phase("verify"):
            integrity = check_integrity(server, spec, whales={w.conversation_id: w.messages for w in params.whales})
            with psycopg.connect(conninfo, autocommit=True) as conn:
                correlation = created_at_correlation(conn)
    timings = {**report.timings, "plan": plan_seconds[0], "plan_and_small_tables_beside_copy": beside.seconds,
               "load": load}
    return SeedResult(
        database=server.database, profile=spec.name, spec=spec.to_dict(), seed=seed, order=order,
        counts=counts, checksum=integrity.checksum, timings=timings, from_cache=False,
        cache_key=key, created_at_correlation=correlation, params=params,
        extra={"workers": workers, "chunk_rows": chunk_rows, "buckets": plan.skeleton.buckets,
               "integrity_checks": len(integrity.checks),
               "page_cache": f"dropped behind the COPY ({dropping.dropped} segment drops), "
                             f"{dropping.warmed} head segments read back" if dropping
                             else "left to the OS",
               "foreign_keys": "proven" if deferred else "validated",
               "index_builds": f"{len(builds)} at once, maintenance_work_mem {budget.work_mem_mb} MB and "
                               f"{budget.parallel_workers} parallel workers each"},
    )
