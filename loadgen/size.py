"""How much disk a seed takes, and whether it fits, checked before any server starts.

A seed of 10^8 messages takes tens of gigabytes; the default run directory is tmpfs (memory). So
``check_space`` estimates the size of the spec from per-row constants and compares it with the free
space of the run and cache directories: a cluster too big for tmpfs is placed on disk (and the
caller says so), one too big for any is refused with one line naming the size, the free space and
the fix, before anything is created.

The constants are measured on real seeded data, not guessed: ``MEASURED`` holds bytes per row of
each table's heap (``pg_table_size``: heap, TOAST, free-space and visibility maps) and of its
indexes (``pg_indexes_size``), the cluster's fixed overhead, and the peak size of the temporary
files the messages' index builds write when their sorts exceed ``maintenance_work_mem`` (measured by
rebuilding them with 1 MB of it). Re-measure after a schema or generator change with::

    python -m chatbench.loadgen.size --measure [--messages 1000000] [--pg-bin DIR]

which seeds a throwaway local server and prints the constants to paste here.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from chatbench import loadgen
from chatbench.errors import ConfigError
from chatbench.loadgen.ddl import load_ddl
from chatbench.loadgen.spec import Spec
from chatbench.provision import provision
from chatbench.provision.paths import (
    FreeSpace,
    cache_root_path,
    free_bytes,
    place_run,
    run_root_path,
    same_file_system,
)


@dataclass(frozen=True)
class RowBytes:
    heap: float  # pg_table_size / rows
    indexes: float  # pg_indexes_size / rows


# Measured with ``--measure`` on PostgreSQL 18.6 (embedded wheel), the release profile scaled to
# 1,000,000 messages, seed 0, GENERATOR_VERSION 4 (COPY FREEZE, time order).
MEASURED: dict[str, RowBytes] = {
    "messages": RowBytes(heap=362.3, indexes=70.2),
    "conversations": RowBytes(heap=128.6, indexes=63.6),
    "users": RowBytes(heap=96.7, indexes=87.7),
}
CLUSTER_OVERHEAD = 64_448_259  # bytes: catalogs, the pristine cluster, WAL kept after the load
SORT_FILES_PER_MESSAGE = 71.8  # bytes: peak temp files of the concurrent index builds, per message
SKELETON_ROW_BYTES = 16  # plan.SKELETON_DTYPE.itemsize (not imported: the check must not pull in numpy)
MARGIN = 1.10  # estimates are of a generated history: leave room for its variation
GB = 1e9


@dataclass(frozen=True)
class SizeEstimate:
    """Bytes a seed of one spec needs (margin included)."""

    messages: int
    tables: int
    indexes: int
    overhead: int
    sort_files: int  # only while the indexes are built
    skeleton: int  # the spilled message skeleton, only while loading

    @property
    def database(self) -> int:
        """What stays: the cluster after the load (and what a snapshot of it copies)."""
        return self.tables + self.indexes + self.overhead

    @property
    def peak(self) -> int:
        """The most the run directory holds at once: the cluster, sort files and skeleton."""
        return self.database + self.sort_files + self.skeleton

    def describe(self) -> str:
        return (
            f"about {self.peak / GB:.1f} GB (messages.count = {self.messages:,}: tables {self.tables / GB:.1f} GB, "
            f"indexes {self.indexes / GB:.1f} GB, index-build sort files {self.sort_files / GB:.1f} GB, "
            f"skeleton {self.skeleton / GB:.1f} GB, server {self.overhead / GB:.1f} GB)"
        )


def estimate(spec: Spec) -> SizeEstimate:
    rows = {"messages": spec.messages.count, "conversations": spec.conversations.count, "users": spec.users.count}
    tables = sum(rows[t] * MEASURED[t].heap for t in rows)
    indexes = sum(rows[t] * MEASURED[t].indexes for t in rows)
    return SizeEstimate(
        messages=spec.messages.count,
        tables=int(tables * MARGIN),
        indexes=int(indexes * MARGIN),
        overhead=CLUSTER_OVERHEAD,
        sort_files=int(spec.messages.count * SORT_FILES_PER_MESSAGE * MARGIN),
        skeleton=spec.messages.count * SKELETON_ROW_BYTES,
    )


@dataclass(frozen=True)
class Placement:
    """Where a local cluster goes (``run_dir``; None for other backends) and what to tell the user."""

    run_dir: Path | None
    estimate: SizeEstimate
    note: str | None = None


def _gb(value: int) -> str:
    return f"{value / GB:.1f} GB"


def check_space(
    spec: Spec, *, backend: str, use_cache: bool, also: Sequence[Spec] = (), free: FreeSpace = free_bytes
) -> Placement:
    """Check the spec fits before any work; where its local cluster goes. Raises ConfigError if not.

    ``backend`` local or auto: the cluster (and the spilled skeleton beside it) needs a run root that
    can hold ``estimate.peak``; with ``use_cache`` the cache needs room for a snapshot of it too (on
    the same file system, both). container and dsn: the server's disk is not ours to see; the
    skeleton still needs the run directory. ``also``: smaller specs seeded beside it on the same
    server (a sign-off's scaling profiles), each a database plus its cached template copy. Nothing
    is created; ``free`` is injectable for tests.
    """
    size = estimate(spec)
    if also:
        extra = sum(2 * (estimate(s).tables + estimate(s).indexes) for s in also)
        size = replace(size, tables=size.tables + extra)
    if backend not in ("local", "auto"):
        root = run_root_path()
        if free(root) < size.skeleton:
            raise ConfigError(
                f"seed needs {_gb(size.skeleton)} for the message skeleton of messages.count = {size.messages:,} "
                f"but {root} has {_gb(free(root))} free; set CHATBENCH_RUN_DIR to a larger disk or lower messages.count"
            )
        return Placement(None, size)
    placement = place_run(size.peak, free)
    if not placement.fits:
        tried = " and ".join(f"{root} has {_gb(room)} free" for root, room in placement.tried)
        raise ConfigError(
            f"seed needs {size.describe()} but {tried}; free space, set CHATBENCH_RUN_DIR to a larger disk, "
            "or lower messages.count"
        )
    if use_cache:
        cache = cache_root_path()
        room = free(cache)
        if same_file_system(cache, placement.root):
            room -= size.peak
        if room < size.database:
            raise ConfigError(
                f"the seed cache needs {_gb(size.database)} for a snapshot of this seed ({size.describe()}) but "
                f"{cache} has {_gb(max(0, room))} free beside the cluster; pass --no-cache, set CHATBENCH_CACHE_DIR "
                "to a larger disk, or lower messages.count"
            )
    note = None
    if placement.moved_to_disk:
        default, default_free = placement.tried[0]
        note = (
            f"local cluster on disk in {placement.root}: the seed needs {_gb(size.peak)}, more than tmpfs "
            f"{default} can hold ({_gb(default_free)} free)"
        )
    return Placement(placement.root, size, note)


def check_seed_space(
    spec: Spec, *, cluster_dir: Path | None, snapshot_dir: Path | None, free: FreeSpace = free_bytes
) -> None:
    """In ``seed()``, on a running server: the same check against where the data will actually go.

    ``cluster_dir``: a local cluster's directory (its file system takes the data, the sort files and
    the skeleton), None for a server whose disk is not ours (then only the skeleton, in the run
    directory). ``snapshot_dir``: where a snapshot of the seed will be cached, if one will.
    """
    size = estimate(spec)
    where = cluster_dir if cluster_dir is not None else run_root_path()
    needed = size.peak - size.overhead if cluster_dir is not None else size.skeleton
    room = free(where)
    if room < needed:
        raise ConfigError(
            f"seed needs {size.describe()} but {where} has {_gb(room)} free; free space, set CHATBENCH_RUN_DIR "
            "to a larger disk, or lower messages.count"
        )
    if snapshot_dir is not None:
        room = free(snapshot_dir) - (needed if same_file_system(snapshot_dir, where) else 0)
        if room < size.database:
            raise ConfigError(
                f"the seed cache needs {_gb(size.database)} for a snapshot of this seed ({size.describe()}) but "
                f"{snapshot_dir} has {_gb(max(0, room))} free beside the cluster; pass --no-cache, set "
                "CHATBENCH_CACHE_DIR to a larger disk, or lower messages.count"
            )


# --- re-measuring the constants -------------------------------------------------------------------


def measure(messages: int, pg_bin: str | None, seed: int = 0) -> str:
    """Seed ``messages`` on a throwaway local server; the per-row constants as Python source."""
    from chatbench.loadgen.bench import bench_spec  # lazy: import cycle (bench imports this module at its top)

    spec = bench_spec("release", messages)
    with provision("local", pg_bin=pg_bin) as server:
        loadgen.seed(server, spec, seed=seed, use_cache=False, progress=False)
        assert server.cluster is not None
        data = server.cluster.data
        lines = [f"# Measured on PostgreSQL {server.version}, release scaled to {messages:,} messages, seed {seed}."]
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            for table, rows in (("messages", messages), ("conversations", spec.conversations.count),
                                ("users", spec.users.count)):
                heap, index = conn.execute(
                    "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)", (table, table)
                ).fetchone() or (0, 0)
                lines.append(f'    "{table}": RowBytes(heap={heap / rows:.1f}, indexes={index / rows:.1f}),')
            relations = conn.execute(
                "SELECT sum(pg_table_size(c.oid) + pg_indexes_size(c.oid)) FROM pg_class c "
                "WHERE c.relname IN ('messages', 'conversations', 'users')"
            ).fetchone()
            total = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
            lines.append(f"CLUSTER_OVERHEAD = {total - int(relations[0] if relations else 0)}")
            steps = load_ddl(conn)
            builds = steps.builds["messages"]
            primary = steps.constraints("messages")
            for step in builds:
                conn.execute(f"ALTER TABLE messages DROP CONSTRAINT {step.name}" if step.name in primary
                             else f"DROP INDEX {step.name}")
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], sum(f.stat().st_size for f in data.rglob("pgsql_tmp*/*") if f.is_file()))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        threads = []
        for step in builds:
            def build(sql: str = step.sql) -> None:
                with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                    conn.execute("SET maintenance_work_mem = '1MB'")
                    conn.execute("SET max_parallel_maintenance_workers = 0")
                    conn.execute(sql)
            threads.append(threading.Thread(target=build))
            threads[-1].start()
        for thread in threads:
            thread.join()
        done.set()
        sampler.join()
        lines.append(f"SORT_FILES_PER_MESSAGE = {peak[0] / messages:.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbench.loadgen.size", description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="seed a throwaway server and print the constants")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--pg-bin", default=None)
    parser.add_argument("--profile", default=None, help="without --measure: print the estimate of this profile")
    args = parser.parse_args(argv)
    if args.measure:
        print(measure(args.messages, args.pg_bin))
        return 0

    spec = loadgen.load_spec(args.profile or "release")
    print(f"{spec.name}: {estimate(spec).describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
