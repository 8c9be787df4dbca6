"""Loadgen throughput benchmark: how close a full seed gets to the server's raw COPY limit.

``python -m chatbench.loadgen.bench --messages 1000000`` on one throwaway server:

(a) raw limit: the same rows, already rendered in memory, binary-COPYed by ``--workers``
    connections into bare tables (no keys, indexes, FKs);
(b) full seed: plan + generation + COPY + keys/indexes + FKs + sequences + VACUUM ANALYZE (what
    ``loadgen.seed`` does before its verification, which is shown apart);
(c) cache hits: ``CREATE DATABASE ... TEMPLATE`` of the seeded database, and (local backend) the
    whole-cluster snapshot restore.

``--rss`` seeds only and reports peak RSS of the harness (parent and each worker) and rows/s, to
check memory stays bounded and time linear at 10M (``--messages 10000000 --rss``). A benchmark
prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from chatbench.loadgen import ddl
from chatbench.loadgen.cache import SnapshotStore, TemplateStore
from chatbench.loadgen.copy import copy_bytes
from chatbench.loadgen.encode import (
    CONVERSATIONS_COPY,
    MESSAGES_COPY,
    USERS_COPY,
    conversation_rows,
    message_rows,
    user_rows,
)
from chatbench.loadgen.plan import build_plan, chunk_slices
from chatbench.loadgen.pools import build_pools
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.seeder import CHUNK_ROWS, default_workers
from chatbench.loadgen.spec import Spec

from chatbench import loadgen
from chatbench.provision import Server, provision

SEED_PHASES = ("plan", "schema", "copy", "indexes", "constraints", "sequences", "vacuum_analyze")


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
    """Like the seed's workers: one forked process and connection per worker, rows already rendered."""
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
    """Render everything first, then time only the COPY into bare tables."""
    pools = build_pools(spec.locales, spec.non_ascii_share, seed)
    plan = build_plan(spec, seed)
    started = time.perf_counter()
    chunks = [message_rows(plan, pools, k, lo, hi)
              for k, (lo, hi) in enumerate(chunk_slices(plan.counts["messages"], CHUNK_ROWS))]
    small = [user_rows(plan, pools), conversation_rows(plan, pools)]
    render = time.perf_counter() - started
    size = sum(len(c) for c in chunks)
    ddl.create_bare(server.conninfo())
    started = time.perf_counter()
    with psycopg.connect(server.conninfo()) as conn:
        copy_bytes(conn, USERS_COPY, small[0])
        copy_bytes(conn, CONVERSATIONS_COPY, small[1])
    _copy_parallel(server.conninfo(), MESSAGES_COPY, chunks, workers)
    copy = time.perf_counter() - started
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        ddl.drop_schema(conn)
        conn.execute("CHECKPOINT")
    return {"render": render, "copy": copy, "bytes": float(size)}


def _peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}")


def _stats(values: list[float]) -> str:
    ordered = sorted(values)
    return f"best {ordered[0]:.2f} s, median {ordered[len(ordered) // 2]:.2f} s"


def run_bench(server: Server, spec: Spec, seed: int, workers: int, rss_only: bool, repeat: int) -> None:
    messages = spec.messages.count
    runs = "one seed (--rss)" if rss_only else f"best of {repeat} (on a shared machine, best ~ uncontended)"
    print(f"loadgen bench: {spec.name} scaled to {messages:,} messages, {workers} workers, "
          f"PostgreSQL {server.version} ({server.backend}), {runs}")
    raws: list[dict[str, float]] = []
    seeds: list[SeedResult] = []
    walls: list[float] = []
    for _ in range(1 if rss_only else repeat):
        if not rss_only:
            raws.append(raw_limit(server, spec, seed, workers))
        build_pools.cache_clear()  # the seed loads its pools as a new process would (from the disk cache)
        started = time.perf_counter()
        seeds.append(loadgen.seed(server, spec, seed=seed, workers=workers, use_cache=False, progress=False))
        walls.append(time.perf_counter() - started)
    fulls = [sum(r.timings[p] for p in SEED_PHASES) for r in seeds]
    if raws:
        raw_copy = min(r["copy"] for r in raws)
        print("(a) raw limit: binary COPY of materialised rows into bare tables")
        _line("rendering (not part of the limit)", _stats([r["render"] for r in raws]))
        _line("COPY", f"{_stats([r['copy'] for r in raws])}: {messages / raw_copy:,.0f} messages/s, "
                      f"{raws[0]['bytes'] / raw_copy / 1e6:,.0f} MB/s ({raws[0]['bytes'] / messages:.0f} B/row)")
    best = seeds[fulls.index(min(fulls))]
    print("(b) full seed: generation + COPY + keys/indexes + FKs + sequences + VACUUM ANALYZE (best run's phases)")
    for phase in (*SEED_PHASES, "verify"):
        _line(phase, f"{best.timings[phase]:.2f} s")
    _line("full seed (without verify)", f"{_stats(fulls)}: {messages / min(fulls):,.0f} messages/s")
    _line("seed() wall time (with verify)", _stats(walls))
    own, children = _peak_rss_mb()
    _line("peak RSS parent / largest worker", f"{own:,.0f} MB / {children:,.0f} MB")
    _line("checksum (equal in every run)", f"{best.checksum} ({len({r.checksum for r in seeds})} distinct)")
    if rss_only:
        return
    print(f"ratio full/raw: {raw_copy / min(fulls):.2f} best-vs-best, "
          f"{sorted(r['copy'] for r in raws)[len(raws) // 2] / sorted(fulls)[len(fulls) // 2]:.2f} median-vs-median "
          "(goal >= 0.5)")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbench.loadgen.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--profile", default=None, help="profile to scale (default: release, scale at 10M+)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--pg-bin", default=None)
    parser.add_argument("--rss", action="store_true", help="seed only, once; report peak RSS and rows/s")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b); best and median shown")
    args = parser.parse_args(argv)
    profile = args.profile or ("scale" if args.messages >= 5_000_000 else "release")
    spec = bench_spec(profile, args.messages)
    workers = args.workers or default_workers()
    with provision(args.backend, pg_bin=args.pg_bin) as server:
        run_bench(server, spec, args.seed, workers, args.rss, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
