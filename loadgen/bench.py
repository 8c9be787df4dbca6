"""Loadgen throughput benchmark: how close a full seed gets to the server's raw COPY limit.

``python -m chatbench.loadgen.bench --messages 1000000`` on one throwaway server:

(a) raw limit: the same rows, already rendered in memory, binary-COPYed into bare tables (no keys,
    indexes, FKs), the faster of ``--workers`` connections at once and one ``COPY FREEZE`` stream;
(b) full seed: the wall time from the call to a database in its final state (plan + generation +
    COPY + keys/indexes + FKs + sequences + visibility map + statistics), what ``loadgen.seed`` does
    before its verification, which is shown apart; the phases overlap, so they do not add up;
(c) cache hits: ``CREATE DATABASE ... TEMPLATE`` of the seeded database, and (local backend) the
    whole-cluster snapshot restore.

``--profiles scale scale100`` instead seeds each profile once, each on a server placed by the size
check (``--on-disk``: every one on disk, for a fair comparison), and prints wall time, rows/s, the
peak RSS of the harness (parent plus render workers, sampled), the database size against the size
check's estimate, and how the time grows against linear. A benchmark prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from chatbench import loadgen
from chatbench.loadgen import ddl
from chatbench.loadgen.cache import SnapshotStore, TemplateStore
from chatbench.loadgen.copy import copy_bytes
from chatbench.loadgen.encode import (
    CONVERSATIONS_COPY,
    MESSAGES_COPY,
    USERS_COPY,
    conversation_rows,
    message_pieces,
    message_rows,
    user_rows,
)
from chatbench.loadgen.plan import build_plan
from chatbench.loadgen.pools import build_pools
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.seeder import CHUNK_ROWS, default_workers
from chatbench.loadgen.size import check_space, estimate
from chatbench.loadgen.spec import Spec
from chatbench.provision import Server, provision
from chatbench.provision.paths import disk_run_root_path
from chatbench.schema.models import TRIGGER_FUNCTIONS, TRIGGERS, metadata
from chatbench.schema.package import SchemaPackage

SEED_PHASES = ("plan", "schema", "copy", "vacuum_analyze", "children", "indexes", "constraints", "sequences")


def bench_spec(profile: str, messages: int | None) -> Spec:
    """The profile, scaled to ``messages`` (users and conversations in proportion, whales kept)."""
    spec = loadgen.load_spec(profile)
    if messages is None or messages == spec.messages.count:
        return spec
    factor = messages / spec.messages.count
    whales = spec.whales.count
    while whales > 1 and sum(spec.whale_sizes()[:whales]) > messages // 2:
        whales -= 1
    overrides = {
        "messages.count": messages,
        "users.count": max(spec.users.heavy + 1, round(spec.users.count * factor)),
        "conversations.count": max(whales + 1, round(spec.conversations.count * factor)),
        "whales.count": whales,
        "whales.max_messages": min(spec.whales.max_messages, max(1000, messages // 4)),
    }
    return loadgen.load_spec(profile, overrides=overrides)


_PARTS: list[bytes] = []  # rendered chunks, inherited by the forked COPY processes


def _copy_share(conninfo: str, statement: str, worker: int, workers: int) -> None:
    with psycopg.connect(conninfo) as conn:
        for rows in _PARTS[worker::workers]:
            copy_bytes(conn, statement, rows)


def _copy_parallel(conninfo: str, statement: str, parts: list[bytes], workers: int) -> None:
    """One forked process and connection per worker, rows already rendered."""
    _PARTS[:] = parts
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_copy_share, args=(conninfo, statement, k, workers)) for k in range(workers)]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
    finally:
        _PARTS.clear()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"raw COPY worker failed with exit code {failed[0]}")


def raw_limit(server: Server, spec: Spec, seed: int, workers: int) -> dict[str, float]:
    """Render everything first, then time only the COPY into bare tables, two ways.

    ``parallel``: ``workers`` connections at once (WAL-logged); ``frozen``: one ``COPY ... FREEZE``
    stream in the transaction that created the tables (no WAL), what the seed does. The limit is the
    faster of the two.
    """
    pools = build_pools(spec.locales, spec.non_ascii_share, seed, spec.content)
    with build_plan(spec, seed) as plan:
        started = time.perf_counter()
        inputs = plan.render_inputs
        total = plan.counts["messages"]
        chunks = [message_rows(inputs, pools, rows, lo, hi, CHUNK_ROWS)
                  for rows in plan.skeleton for lo, hi in message_pieces(total, rows.lo, rows.hi, CHUNK_ROWS)]
        small = [user_rows(plan, pools), conversation_rows(plan, pools)]
        render = time.perf_counter() - started
    size = sum(len(c) for c in chunks)
    conninfo = server.conninfo()
    ddl.create_bare(conninfo)
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        copy_bytes(conn, USERS_COPY, small[0])
        copy_bytes(conn, CONVERSATIONS_COPY, small[1])
    _copy_parallel(conninfo, MESSAGES_COPY, chunks, workers)
    parallel = time.perf_counter() - started
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE users, conversations, messages")
        conn.execute("CHECKPOINT")
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        conn.execute("TRUNCATE users, conversations, messages")  # FREEZE: truncated in this transaction
        freeze = "(FORMAT BINARY, FREEZE)"
        copy_bytes(conn, USERS_COPY.replace("(FORMAT BINARY)", freeze), small[0])
        copy_bytes(conn, CONVERSATIONS_COPY.replace("(FORMAT BINARY)", freeze), small[1])
        copy_bytes(conn, MESSAGES_COPY.replace("(FORMAT BINARY)", freeze), iter(chunks))
    frozen = time.perf_counter() - started
    with psycopg.connect(conninfo, autocommit=True) as conn:
        ddl.drop_schema(conn)
        conn.execute("CHECKPOINT")
    return {"render": render, "parallel": parallel, "frozen": frozen, "copy": min(parallel, frozen),
            "bytes": float(size)}


@dataclass
class MemoryPeak:
    """Peak RSS of this process plus its child processes (the render workers), sampled every 50 ms
    while the block runs (not the process's lifetime peak: the raw limit's rendered rows are apart)."""

    total_mb: float = 0.0  # the largest sum seen at one moment
    own_mb: float = 0.0
    child_mb: float = 0.0  # the largest single child

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = os.getpid()
        while True:
            own = _rss_mb(me)
            children = [_rss_mb(pid) for pid in _children(me)]
            self.total_mb = max(self.total_mb, own + sum(children))
            self.own_mb = max(self.own_mb, own)
            self.child_mb = max([self.child_mb, *children])
            if self._stop.wait(0.05):
                return


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def post_load_floor(server: Server) -> dict[str, float]:
    """The messages' index builds and ANALYZE alone, on the seeded table: work no load can skip.

    The indexes are dropped and built again exactly as the seed builds them (at once, same budget),
    the primary key attached again, then ANALYZE: the database ends as it was.
    """
    with psycopg.connect(server.conninfo()) as conn:
        steps = ddl.load_ddl(conn)
    builds = steps.builds["messages"]
    primary = steps.constraints("messages")
    conninfo = server.conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for step in builds:
            conn.execute(f"ALTER TABLE messages DROP CONSTRAINT {step.name}" if step.name in primary
                         else f"DROP INDEX {step.name}")
        conn.execute("CHECKPOINT")
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM messages").fetchone()
    budget = ddl.MaintenanceBudget.for_machine(len(builds), rows=int(row[0]) if row else 0)
    started = time.perf_counter()  # the builds alone, not the count that sized their budget
    ddl.run_parallel(conninfo, builds, len(builds), budget)
    indexes = time.perf_counter() - started
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for sql in steps.attach["messages"]:
            conn.execute(sql)
        started = time.perf_counter()
        conn.execute("ANALYZE messages")
        analyze = time.perf_counter() - started
    return {"indexes": indexes, "analyze": analyze}


def _line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}")


def _stats(values: list[float]) -> str:
    ordered = sorted(values)
    return f"best {ordered[0]:.2f} s, median {ordered[len(ordered) // 2]:.2f} s"


def superset_package() -> SchemaPackage:
    """The canonical models plus what a release adds: three columns on messages (a nullable timestamptz, a
    nullable integer, a jsonb with a server default) and an attachments table hanging from messages."""
    extended = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(extended)
    for body in TRIGGER_FUNCTIONS.values():  # the models' DDL events, as schema.models attaches them
        sa.event.listen(extended, "before_create", sa.DDL(body.strip()))
    for table_name, create in TRIGGERS.values():
        sa.event.listen(extended.tables[table_name], "after_create", sa.DDL(create))
    messages = extended.tables["messages"]
    messages.append_column(sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True))
    messages.append_column(sa.Column("token_count", sa.Integer, nullable=True))
    messages.append_column(sa.Column("metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'")))
    sa.Table(
        "attachments", extended,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("message_id", sa.BigInteger, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, sa.CheckConstraint("size_bytes >= 0", name="size_not_negative"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Index("ix_attachments_message_id", "message_id"),
    )
    return SchemaPackage("bench:superset", extended)


def _load(result: SeedResult) -> float:
    return float(result.timings["load"])


def run_bench(server: Server, spec: Spec, seed: int, workers: int, repeat: int) -> None:
    messages = spec.messages.count
    print(f"loadgen bench: {spec.name} scaled to {messages:,} messages, {workers} workers, "
          f"PostgreSQL {server.version} ({server.backend}), best of {repeat} "
          f"(on a shared machine, best ~ uncontended), load average {os.getloadavg()[0]:.2f}")
    raws: list[dict[str, float]] = []
    seeds: list[SeedResult] = []
    supersets: list[SeedResult] = []
    walls: list[float] = []
    memory = MemoryPeak()
    superset = superset_package()
    for _ in range(repeat):
        raws.append(raw_limit(server, spec, seed, workers))
        build_pools.cache_clear()  # the seed loads its pools as a new process would (from the disk cache)
        started = time.perf_counter()
        with MemoryPeak() as during:
            seeds.append(loadgen.seed(server, spec, seed=seed, workers=workers, use_cache=False, progress=False))
        walls.append(time.perf_counter() - started)
        memory = max(memory, during, key=lambda m: m.total_mb)
        supersets.append(loadgen.seed(server, spec, seed=seed, workers=workers, use_cache=False, progress=False,
                                      package=superset))
        loadgen.seed(server, spec, seed=seed, workers=workers, use_cache=False, progress=False)  # canonical again
    fulls = [_load(r) for r in seeds]
    raw_copy = min(r["copy"] for r in raws)
    print("(a) raw limit: binary COPY of materialised rows into bare tables")
    _line("rendering (not part of the limit)", _stats([r["render"] for r in raws]))
    _line(f"COPY on {workers} connections", _stats([r["parallel"] for r in raws]))
    _line("one COPY FREEZE stream (what the seed does)", _stats([r["frozen"] for r in raws]))
    _line("limit (the faster, per run)", f"{_stats([r['copy'] for r in raws])}: {messages / raw_copy:,.0f} "
          f"messages/s, {raws[0]['bytes'] / raw_copy / 1e6:,.0f} MB/s ({raws[0]['bytes'] / messages:.0f} B/row)")
    best = seeds[fulls.index(min(fulls))]
    print("(b) full seed: wall time to the final state (phases overlap; best run's phases)")
    for phase in (*SEED_PHASES, "verify"):
        _line(phase, f"{best.timings.get(phase, 0.0):.2f} s")
    beside = best.timings.get("plan_and_small_tables_beside_copy", 0.0)
    _line("plan, then users + conversations (beside)", f"{beside:.2f} s")
    _line("index builds", str(best.extra.get("index_builds", "")))
    _line("full seed (without verify)", f"{_stats(fulls)}: {messages / min(fulls):,.0f} messages/s, "
          f"{raws[0]['bytes'] / min(fulls) / 1e6:,.0f} MB/s of COPY data")
    _line("seed() wall time (with verify)", _stats(walls))
    _line("peak RSS parent + workers during a seed", f"{memory.total_mb:,.0f} MB (parent {memory.own_mb:,.0f} MB, "
          f"largest worker {memory.child_mb:,.0f} MB; sampled sum)")
    _line("checksum (equal in every run)", f"{best.checksum} ({len({r.checksum for r in seeds})} distinct)")
    wide = [_load(r) for r in supersets]
    extra_rows = sum(n for t, n in supersets[0].counts.items() if t not in seeds[0].counts)
    _line("superset seed (3 more columns, attachments)", f"{_stats(wide)}: {min(wide) / min(fulls):.2f}x the "
          f"canonical best-vs-best (goal <= 1.2x), {extra_rows:,} attachment rows")
    print(f"ratio full/raw: {raw_copy / min(fulls):.2f} best-vs-best, "
          f"{sorted(r['copy'] for r in raws)[len(raws) // 2] / sorted(fulls)[len(fulls) // 2]:.2f} median-vs-median "
          "(goal >= 0.5)")
    floors = [post_load_floor(server) for _ in range(repeat)]
    frozen = min(r["frozen"] for r in raws)
    builds, analyze = min(f["indexes"] for f in floors), min(f["analyze"] for f in floors)
    floor = frozen + builds + analyze
    print(f"what bounds it: the index builds need every row first: one COPY FREEZE stream {frozen:.2f} s + "
          f"the 3 index builds at once {builds:.2f} s + ANALYZE {analyze:.2f} s = {floor:.2f} s before any "
          f"generation, planning or key work, so the ratio is at most {raw_copy / floor:.2f} here")
    result = best
    print("(c) cache hits")
    template = TemplateStore()
    template.save(server, result.cache_key, result)
    clone = server.with_database(f"bench_{server.run_id}", owns_database=True)
    with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{clone.database}"')
    try:
        hits = []
        for _ in range(repeat):
            hit = template.fetch(clone, result.cache_key)
            assert hit is not None
            hits.append(hit.timings["cache_restore"])
        _line("template hit (CREATE DATABASE ... TEMPLATE)", _stats(hits))
    finally:
        with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{clone.database}"')
        TemplateStore.drop(server, result.cache_key)
    if server.cluster is not None and server.database == "chatbench":
        root = Path(tempfile.mkdtemp(prefix="chatbench-bench-snap-"))
        try:
            store = SnapshotStore(root)
            started = time.perf_counter()
            store.save(server, result.cache_key, result)
            _line("snapshot save (stop, copy data dir, start)", f"{time.perf_counter() - started:.2f} s")
            restores = []
            for _ in range(repeat):
                snap = store.fetch(server, result.cache_key)
                assert snap is not None
                restores.append(snap.timings["cache_restore"])
            _line("snapshot hit (stop, restore data dir, start)", _stats(restores))
        finally:
            shutil.rmtree(root, ignore_errors=True)


def run_profiles(profiles: list[str], seed: int, workers: int, pg_bin: str | None, on_disk: bool) -> None:
    """One cold seed per profile, each on its own server; time, rows/s, peak RSS, growth against linear."""
    print(f"loadgen bench --profiles: {workers} workers, one seed per profile (no cache), "
          f"{'every cluster on disk' if on_disk else 'clusters placed by the size check'}")
    measured: list[tuple[int, float, float]] = []
    for name in profiles:
        spec = loadgen.load_spec(name)
        messages = spec.messages.count
        if on_disk:  # the disk root, whatever CHATBENCH_RUN_DIR says (the seed checks its room itself)
            run_dir: Path | None = disk_run_root_path()
        else:
            run_dir = check_space(spec, backend="local", use_cache=False).run_dir
        with provision("local", pg_bin=pg_bin, run_dir=run_dir, announce=lambda _: None) as server:
            print(f"{name} ({messages:,} messages) in {run_dir}, PostgreSQL {server.version}, "
                  f"load average {os.getloadavg()[0]:.2f}")
            started = time.perf_counter()
            with MemoryPeak() as memory:
                result = loadgen.seed(server, spec, seed=seed, workers=workers, use_cache=False, progress=False)
            wall = time.perf_counter() - started
            with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            size = int(row[0]) if row else 0
        load = _load(result)
        measured.append((messages, load, wall))
        phases = ", ".join(f"{p} {result.timings.get(p, 0.0):.1f}" for p in (*SEED_PHASES, "verify"))
        _line("full seed (without verify)", f"{load:.1f} s: {messages / load:,.0f} messages/s")
        _line("seed() wall time (with verify)", f"{wall:.1f} s")
        _line("phases (s)", phases)
        _line("index builds", str(result.extra.get("index_builds", "")))
        _line("page cache of the messages' heap", str(result.extra.get("page_cache", "")))
        _line("peak RSS parent + workers during the seed", f"{memory.total_mb:,.0f} MB (parent "
              f"{memory.own_mb:,.0f} MB, largest worker {memory.child_mb:,.0f} MB; sampled sum)")
        estimated = estimate(spec).database / 1e9
        _line("database size (the size check's estimate)", f"{size / 1e9:.2f} GB ({estimated:.2f} GB)")
        _line("checksum", result.checksum)
        print(f"  load average after: {os.getloadavg()[0]:.2f}")
    for (small, load_small, wall_small), (big, load_big, wall_big) in itertools.pairwise(measured):
        factor = big / small
        print(f"growth {small:,} -> {big:,} messages: full seed {load_big:.1f} s against {load_small * factor:.1f} s "
              f"if linear ({load_big / (load_small * factor):.2f}x), with verify {wall_big:.1f} s against "
              f"{wall_small * factor:.1f} s ({wall_big / (wall_small * factor):.2f}x); goal <= 1.2x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbench.loadgen.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--profile", default=None, help="profile to scale (default: release, scale at 5M+)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--pg-bin", default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b); best and median shown")
    parser.add_argument("--profiles", nargs="+", default=None, metavar="PROFILE",
                        help="seed each profile once instead (e.g. scale scale100): time, RSS, size, growth")
    parser.add_argument("--on-disk", action="store_true", help="with --profiles: every cluster on disk")
    parser.add_argument("--content-style", choices=("ai", "human"), default=None,
                        help="the profile's [content] style instead (human: the short texts of earlier versions)")
    args = parser.parse_args(argv)
    workers = args.workers or default_workers()
    if args.profiles:
        run_profiles(args.profiles, args.seed, workers, args.pg_bin, args.on_disk)
        return 0
    profile = args.profile or ("scale" if args.messages >= 5_000_000 else "release")
    spec = bench_spec(profile, args.messages)
    if args.content_style is not None:
        spec = dataclasses.replace(spec, content=dataclasses.replace(spec.content, style=args.content_style))
    with provision(args.backend, pg_bin=args.pg_bin) as server:
        run_bench(server, spec, args.seed, workers, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
