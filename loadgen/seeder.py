"""``seed(server, spec)``: plan, COPY, build, verify, cache; the one entry point other stages call.

Phases: ``plan`` (numpy skeleton + Faker pools), ``schema`` (bare tables), ``copy`` (messages by
worker processes; meanwhile this process loads users and conversations and builds their keys,
indexes and foreign key), ``indexes`` (the messages' primary key and indexes, two at a time),
``constraints`` (foreign keys, triggers), ``sequences``, ``vacuum_analyze``, ``verify`` (checksum +
integrity), and ``cache_save`` when caching. The database is never cached unless the integrity
check passed.
"""

from __future__ import annotations

import os
import time

import psycopg
from chatbench.loadgen import ddl
from chatbench.loadgen.cache import SeedCache, cache_key, store_for
from chatbench.loadgen.copy import copy_bytes, copy_messages
from chatbench.loadgen.encode import CONVERSATIONS_COPY, USERS_COPY, conversation_rows, user_rows
from chatbench.loadgen.integrity import check_integrity
from chatbench.loadgen.params import seed_parameters
from chatbench.loadgen.plan import ORDERS, build_plan, chunk_slices
from chatbench.loadgen.pools import build_pools
from chatbench.loadgen.progress import Reporter
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.spec import Spec

from chatbench.errors import ConfigError
from chatbench.provision.server import Server

CHUNK_ROWS = 50_000


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
    result = seed_fresh(server, spec, seed=seed, workers=workers, order=order, progress=progress,
                        chunk_rows=chunk_rows, key=key)
    if store is not None:
        result = _save(store, server, key, result)
    return result


def _save(store: SeedCache, server: Server, key: str, result: SeedResult) -> SeedResult:
    """Publish a verified seed; a cache that cannot be written (no CREATEDB, full disk) is not fatal."""
    import sys
    import time
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


def _vacuum_analyze(conninfo: str, *, settle_seconds: float = 5.0) -> None:
    """VACUUM until the visibility map covers each table, then ANALYZE: index-only scans and statistics.

    Measured, not style: right after a bulk load committed with synchronous_commit=off, VACUUM sets
    no page all-visible (0 of 920 pages) for a few hundred milliseconds, even once the WAL is flushed;
    a VACUUM a moment later covers the whole table. count(*) then becomes a bitmap heap scan instead of
    an index-only scan, and plan contracts and buffer budgets judge a state no real table stays in. So
    the WAL is flushed by one synchronous commit, and VACUUM is repeated (cheap: it skips pages already
    all-visible) until relallvisible reaches relpages or ``settle_seconds`` pass. INDEX_CLEANUP ON keeps
    VACUUM from skipping index cleanup, which would leave dead line pointers and pages not all-visible.
    """
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET LOCAL synchronous_commit = on")
        conn.execute("SELECT txid_current()")  # the commit on leaving the block flushes all WAL so far
    with psycopg.connect(conninfo, autocommit=True) as conn:
        deadline = time.monotonic() + settle_seconds
        for table in ("messages", "conversations", "users"):
            while True:
                conn.execute(f"VACUUM (INDEX_CLEANUP ON) {table}")
                pages, visible = conn.execute(
                    "SELECT relpages, relallvisible FROM pg_class WHERE oid = %s::regclass", (table,)
                ).fetchone() or (0, 0)
                if visible >= pages or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        for table in ("messages", "conversations", "users"):
            conn.execute(f"ANALYZE {table}")


def created_at_correlation(conn: psycopg.Connection) -> float:
    row = conn.execute(
        "SELECT correlation FROM pg_stats WHERE schemaname = current_schema() "
        "AND tablename = 'messages' AND attname = 'created_at'"
    ).fetchone()
    return float(row[0]) if row is not None and row[0] is not None else float("nan")


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
    from chatbench import schema
    conninfo = server.conninfo()
    with Reporter(progress) as report:
        with report.phase("plan"):
            pools = build_pools(spec.locales, spec.non_ascii_share, seed)
            plan = build_plan(spec, seed, order)
        counts = plan.counts
        with report.phase("schema"):
            ddl.create_bare(conninfo)
        chunks = chunk_slices(counts["messages"], chunk_rows)

        builds, fks, triggers = ddl.split_after(schema.load_phases().after)
        # The small tables' keys, indexes and FKs are built while the workers COPY messages.
        small_steps = [s for s in builds + fks if s.table != "messages" and "REFERENCES messages" not in s.sql]
        builds = [s for s in builds if s not in small_steps]
        fks = [s for s in fks if s not in small_steps]

        def small_tables() -> None:
            with psycopg.connect(conninfo) as conn:
                copy_bytes(conn, USERS_COPY, user_rows(plan, pools))
                copy_bytes(conn, CONVERSATIONS_COPY, conversation_rows(plan, pools))
            ddl.run_parallel(conninfo, small_steps, 1)

        with report.phase("copy", total=counts["messages"]) as bar:
            copy_messages(conninfo, plan, pools, chunks, workers, bar.advance, in_parent=small_tables)
        with report.phase("indexes"):
            ddl.run_parallel(conninfo, builds, 2)
        with report.phase("constraints"):
            ddl.run_parallel(conninfo, fks, 2)
            ddl.run_parallel(conninfo, triggers, 1)
        with report.phase("sequences"), psycopg.connect(conninfo, autocommit=True) as conn:
            ddl.set_sequences(conn)
        with report.phase("vacuum_analyze"):
            _vacuum_analyze(conninfo)
        params = seed_parameters(plan)
        with report.phase("verify"):
            integrity = check_integrity(server, spec, whales={w.conversation_id: w.messages for w in params.whales})
            with psycopg.connect(conninfo, autocommit=True) as conn:
                correlation = created_at_correlation(conn)
    return SeedResult(
        database=server.database, profile=spec.name, spec=spec.to_dict(), seed=seed, order=order,
        counts=counts, checksum=integrity.checksum, timings=dict(report.timings), from_cache=False,
        cache_key=key, created_at_correlation=correlation, params=params,
        extra={"workers": workers, "chunks": len(chunks), "chunk_rows": chunk_rows,
               "integrity_checks": len(integrity.checks)},
    )
