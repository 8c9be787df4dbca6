"""What ``chatbench load`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.load``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from rich.table import Table

from chatbench import loadgen, output
from chatbench.benchmarks.environment import fingerprint
from chatbench.benchmarks.loadtest.mix import parameter_pools, parse_weights
from chatbench.benchmarks.loadtest.runner import LoadConfig, run_load
from chatbench.benchmarks.pinning import PinningResult
from chatbench.benchmarks.results import BenchmarkRun, write
from chatbench.commands._common import out, require_writable, server_from
from chatbench.convert import to_plain
from chatbench.settings import Settings

if TYPE_CHECKING:
    from chatbench.output import Output


def run(settings: Settings, args: argparse.Namespace) -> int:
    weights = parse_weights(settings.mix)
    config = LoadConfig(clients=settings.clients, duration_s=settings.duration, warmup_s=settings.warmup_seconds,
                        rate_per_s=settings.rate, weights=weights, seed=settings.seed)
    config.validate()
    loadgen.load_spec(settings.profile)  # a bad profile is a usage error before any server starts
    require_writable(settings, "load seeds the data and appends messages")
    with server_from(settings) as server:
        seed = loadgen.seed(server, loadgen.load_spec(settings.profile), seed=settings.seed, use_cache=True)
        server = seed.server_for(server)
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            pools = parameter_pools(conn, seed.params, weights)
        placement = PinningResult("off", None, os.getpid(), False, tuple(sorted(os.sched_getaffinity(0))), None, False,
                                  (), f"load: {settings.clients} client process(es), placement left to the scheduler")
        environment = fingerprint(server, seed, to_plain(placement))
        with out.stage("load") as stage:
            result = run_load(server.conninfo(), config, pools, progress=stage.step)
    run_record = BenchmarkRun(kind="load", run_id=os.urandom(6).hex(), created_at=datetime.now(UTC).isoformat(),
                              environment=environment, load=result)
    document = settings.format == "json"
    render(run_record, out if document else output.stdout())  # stdout holds the document alone with json
    assert settings.results is not None  # the load command's default is a file
    path = write(run_record, settings.results)
    out.line(f"results: {path}")
    if document:
        output.print_document(Path(path).read_text(encoding="utf-8"))
    return 1 if result.errors else 0


def render(run: BenchmarkRun, out: Output) -> None:
    """A load run for people: per operation count, errors and corrected percentiles (a table on a
    terminal, one line per operation in a log)."""
    load = run.load
    assert load is not None
    mode = "closed loop" if load.mode == "closed" else f"open loop at {load.rate_per_s:g}/s"
    env = run.environment
    out.line(f"load: {load.clients} client(s), {mode}, {load.duration_s:.1f} s, {env.profile} profile "
             f"({env.data_sizes.get('messages', '?')} messages), PostgreSQL {env.server_version}")
    out.line(f"throughput {load.throughput_per_s:,.0f} ops/s, {load.total:,} ops, {load.errors} errors; "
             f"latency ms from HDR histograms corrected for coordinated omission ({load.correction})")
    table = Table(title="latency ms (corrected; p99 raw: uncorrected)", title_justify="left")
    columns = ("count", "errors", "p50", "p95", "p99", "p99.9", "max", "p99 raw")
    table.add_column("operation", no_wrap=True)
    for name in columns:
        table.add_column(name, justify="right")
    lines = []
    for op in (*load.operations, load.overall):
        p = op.percentiles_ms
        raw = p.get("p99_uncorrected")
        cells = (f"{op.count}", f"{op.errors}", *(f"{p[k]:.3f}" for k in ("p50", "p95", "p99", "p99.9", "max")),
                 "" if raw is None else f"{raw:.3f}")
        table.add_row(op.operation, *cells)
        latency = ", ".join(f"{name} {cell}" for name, cell in zip(columns[2:], cells[2:], strict=True) if cell)
        lines.append(f"{op.operation}: {op.count} ops, {op.errors} errors; latency ms {latency}")
    out.table(table, lines)
    for sample in load.error_samples:
        out.line(f"error: {sample}")
