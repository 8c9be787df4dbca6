"""Concurrent load: N client processes running a weighted mix of history reads and message appends.

Closed loop by default (each client back to back for ``--duration``); ``--rate R`` makes it open
loop at R operations per second in total (Poisson arrivals, latency from the intended start).
Latency percentiles come from HDR histograms corrected for coordinated omission; the result (same
JSON family as ``chatbench bench``) goes to ``--out``. Exit 1 when any operation failed.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chatbench.settings import SERVER_SETTINGS, Settings

if TYPE_CHECKING:
    from chatbench.benchmarks.results import BenchmarkRun

NAME = "load"
HELP = "concurrent clients running a weighted read/append mix (HDR percentiles, throughput, errors)"
SETTINGS = (*SERVER_SETTINGS, "profile", "seed", "clients", "duration", "warmup_seconds", "rate", "mix", "results")


def run(settings: Settings, args: argparse.Namespace) -> int:
    import psycopg

    from chatbench import loadgen
    from chatbench.benchmarks.environment import fingerprint
    from chatbench.benchmarks.loadtest import LoadConfig, parse_weights, run_load
    from chatbench.benchmarks.loadtest.mix import parameter_pools
    from chatbench.benchmarks.pinning import PinningResult
    from chatbench.benchmarks.results import BenchmarkRun, write
    from chatbench.commands._common import console, require_writable, server_from

    weights = parse_weights(settings.mix)
    config = LoadConfig(clients=settings.clients, duration_s=settings.duration, warmup_s=settings.warmup_seconds,
                        rate_per_s=settings.rate, weights=weights, seed=settings.seed)
    config.validate()
    loadgen.load_spec(settings.profile)  # a bad profile is a usage error before any server starts
    require_writable(settings, "load seeds the data and appends messages")
    with server_from(settings) as server:
        seed = loadgen.seed(server, loadgen.load_spec(settings.profile), seed=settings.seed, use_cache=True)
        if seed.database != server.database:
            server = server.with_database(seed.database, owns_database=True)
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            pools = parameter_pools(conn, seed.params, weights)
        placement = PinningResult("off", None, os.getpid(), False, tuple(sorted(os.sched_getaffinity(0))), None, False,
                                  (), f"load: {settings.clients} client process(es), placement left to the scheduler")
        environment = fingerprint(server, seed, placement.to_dict())
        with console.status("load") as status:
            result = run_load(server.conninfo(), config, pools, progress=lambda m: status.update(f"load: {m}"))
    run_record = BenchmarkRun(kind="load", run_id=os.urandom(6).hex(), created_at=datetime.now(UTC).isoformat(),
                              environment=environment, load=result)
    print(render(run_record))
    assert settings.results is not None  # the load command's default is a file
    path = write(run_record, settings.results)
    console.print(f"results: {path}")
    return 1 if result.errors else 0


def render(run: BenchmarkRun) -> str:
    """Plain-text table of a load run: per operation count, errors and corrected percentiles."""
    load = run.load
    assert load is not None
    mode = "closed loop" if load.mode == "closed" else f"open loop at {load.rate_per_s:g}/s"
    env = run.environment
    lines = [f"load: {load.clients} client(s), {mode}, {load.duration_s:.1f} s, {env.profile} profile "
             f"({env.data_sizes.get('messages', '?')} messages), PostgreSQL {env.server_version}",
             f"throughput {load.throughput_per_s:,.0f} ops/s, {load.total:,} ops, {load.errors} errors; "
             f"latency ms from HDR histograms corrected for coordinated omission ({load.correction})",
             f"{'operation':<16}{'count':>9}{'errors':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'p99.9':>9}{'max':>9}"
             f"{'p99 raw':>9}"]
    for op in (*load.operations, load.overall):
        p = op.percentiles_ms
        raw = p.get("p99_uncorrected")
        lines.append(f"{op.operation:<16}{op.count:>9}{op.errors:>8}{p['p50']:>9.3f}{p['p95']:>9.3f}{p['p99']:>9.3f}"
                     f"{p['p99.9']:>9.3f}{p['max']:>9.3f}{'' if raw is None else f'{raw:.3f}':>9}")
    for sample in load.error_samples:
        lines.append(f"error: {sample}")
    return "\n".join(lines)
