"""Benchmark (not a test): what a migration statement costs the chat, three ways.

python -m chatbench.rehearse.bench [--profiles ci,release] [--parts index,queue,wal] [--production-messages 1e9]
                                   [--long-transaction 5] [--lock-timeout 2s[,500ms]] [--pg-bin DIR]

Per profile, on one throwaway server:

- ``index``: a CREATE INDEX without CONCURRENTLY on messages: its build time alone (an idle clone of the
  seeded database, median of 3), then rehearsed under the live load: how long it held SHARE on messages
  (the appends' blocking time), the app appends seen blocked and their longest wait, and the blocking time
  extrapolated linearly to the production size from the profile and the next smaller one.
- ``queue``: a metadata-only ``ALTER TABLE messages ADD COLUMN`` behind a ``--long-transaction`` (5 s),
  without and with ``SET lock_timeout`` (2 s): the app queries queued behind its waiting lock (count,
  longest wait), its tries, and the verdict.
- ``wal``: a one-statement backfill of a new messages column against one batch of a batched one (5000
  rows), and a table rewrite (``VACUUM FULL messages``): the WAL each wrote at both sizes, extrapolated to the
  production size, and the replica lag at the ``[rehearsal] wal`` budget's apply rate. The rehearsal runs
  with ``wal_level = replica`` and ``full_page_writes = on`` (``stage.production_wal``), as a primary with
  replicas does: the printed settings say so.

Wall-clock numbers on a shared machine are noisy: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg

from chatbench import loadgen
from chatbench.benchmarks.loadtest.mix import DEFAULT_WEIGHTS
from chatbench.provision import Server, provision
from chatbench.provision.databases import temporary_database
from chatbench.rehearse.budgets import load_budgets
from chatbench.rehearse.rules import wal_size
from chatbench.rehearse.stage import PRODUCTION_WAL, RehearsalPlan, rehearse, smaller_spec
from chatbench.rehearse.statements import split_sql

STATEMENT = "CREATE INDEX ix_bench_messages_user_id_created_at ON messages (user_id, created_at)"
ADD_COLUMN = "ALTER TABLE messages ADD COLUMN edited_at timestamptz;"
NEW_COLUMN = "ALTER TABLE messages ADD COLUMN content_chars integer;\n"
ONE_STATEMENT = NEW_COLUMN + "UPDATE messages SET content_chars = length(content);"
BATCHED = NEW_COLUMN + ("UPDATE messages SET content_chars = length(content) WHERE id IN (SELECT id FROM messages "
                        "WHERE content_chars IS NULL ORDER BY id LIMIT 5000);")
REWRITE = "VACUUM FULL messages;"
WAL_CASES = (("one statement", ONE_STATEMENT, 2), ("one batch", BATCHED, 2), ("table rewrite", REWRITE, 1))


def build_alone(server: Server, spec: loadgen.Spec, runs: int = 3) -> float:
    """Median seconds of the index build on an idle clone of the seeded database (no load)."""
    times = []
    with temporary_database(server, "cbr_bench_seed") as sibling:
        seeded = loadgen.seed(sibling, spec, seed=1, progress=False)
        template = seeded.database
        for _ in range(runs):
            with temporary_database(server, "cbr_bench", template=template) as clone, \
                    psycopg.connect(clone.conninfo(), autocommit=True) as conn:
                started = time.perf_counter()
                conn.execute(STATEMENT)
                times.append(time.perf_counter() - started)
    return statistics.median(times)


def _plan(sql: str, spec: loadgen.Spec, args: argparse.Namespace, *, long_transaction_s: float = 0.0
          ) -> RehearsalPlan:
    return RehearsalPlan(
        migration=split_sql(sql, "bench"), migration_source=" ".join(sql.split()), migration_cmd=None,
        before_file=None, before_cmd=None, spec=spec, small_spec=smaller_spec(spec), seed=1,
        production_messages=int(args.production_messages), clients=args.clients, rate_per_s=args.rate,
        weights=DEFAULT_WEIGHTS, baseline_s=1.0, budgets=load_budgets(), timeout_s=3600, verify=False,
        long_transaction_s=long_transaction_s, lock_retries=args.lock_retries)


def index_row(server: Server, spec: loadgen.Spec, args: argparse.Namespace) -> str:
    alone = build_alone(server, spec)
    result = rehearse(server, _plan(STATEMENT + ";", spec, args))
    run = result.measured.statements[0]
    estimate = next(e for e in result.estimates if e.table == "messages" and e.access == "appends")
    blocking = run.blocking_s("messages", "appends")
    wal = wal_size(run.wal_bytes) if run.wal_bytes is not None else "?"
    return (f"{spec.name:<9}{spec.messages.count:>10,}{alone:>15.3f}{blocking:>12.3f}"
            f"{run.blocked['appends'].count:>17}{run.blocked['appends'].longest_s:>16.3f}{wal:>12}"
            f"{estimate.extrapolated_s:>16.1f}  {estimate.production_messages:,} "
            f"(linear from {estimate.small_messages:,} and {estimate.large_messages:,})")


def queue_rows(server: Server, spec: loadgen.Spec, args: argparse.Namespace) -> list[str]:
    rows = []
    for timeout in ("none", *args.lock_timeout.split(",")):
        sql = ADD_COLUMN if timeout == "none" else f"SET lock_timeout = '{timeout}';\n{ADD_COLUMN}"
        result = rehearse(server, _plan(sql, spec, args, long_transaction_s=args.long_transaction))
        run = result.measured.statements[-1]
        queued = {q.access: q for q in run.queue}
        cells = [f"{queued[a].count:>3} / {queued[a].longest_s:6.3f}" if a in queued else f"{0:>3} / {0:6.3f}"
                 for a in ("reads", "appends")]
        tries = ", ".join(f"{a.outcome} {a.duration_s:.2f} s" for a in run.attempts) or "1 (waited)"
        verdict = ", ".join(f.line()[:4] + " " + f.rule for f in result.findings) or "PASS"
        rows.append(f"{spec.name:<9}{spec.messages.count:>10,}  {timeout:<13}{run.waited_s:>9.3f}  {cells[0]:>14}"
                    f"  {cells[1]:>14}  {verdict:<20} tries: {tries}")
    return rows


def wal_rows(server: Server, spec: loadgen.Spec, args: argparse.Namespace) -> list[str]:
    rows = []
    for name, sql, statement in WAL_CASES:
        result = rehearse(server, _plan(sql, spec, args))
        estimate = next(e for e in result.wal_estimates if e.statement == statement)
        verdict = "FAIL wal" if any(f.rule == "wal" for f in result.findings) else "PASS wal"
        ran = ", ".join(f"{k} = {result.server['settings'].get(k, '?')}" for k in PRODUCTION_WAL)
        rows.append(f"{spec.name:<9}{spec.messages.count:>10,}  {name:<14}{wal_size(estimate.small_bytes):>12}"
                    f"{wal_size(estimate.large_bytes):>12}{wal_size(estimate.extrapolated_bytes):>14}"
                    f"{estimate.lag_s:>12,.1f}  {verdict}  ({ran})")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chatbench.rehearse.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="ci,release", help="comma-separated profiles, each rehearsed with the "
                        "next smaller one (default: ci,release)")
    parser.add_argument("--parts", default="index,queue,wal", help="comma-separated: index (CREATE INDEX without "
                        "CONCURRENTLY), queue (ADD COLUMN behind a long transaction), wal (backfills and a rewrite)")
    parser.add_argument("--production-messages", type=float, default=1e9, help="extrapolate to this many messages")
    parser.add_argument("--rate", type=float, default=150.0, help="app requests per second, in total (open loop)")
    parser.add_argument("--clients", type=int, default=3, help="app client processes")
    parser.add_argument("--long-transaction", type=float, default=5.0,
                        help="seconds the long transaction stays open into the migration (queue part)")
    parser.add_argument("--lock-timeout", default="2s", help="comma-separated: each is rehearsed besides none")
    parser.add_argument("--lock-retries", type=int, default=5, help="tries after a lock timeout, with backoff")
    parser.add_argument("--pg-bin", default=None, help="PostgreSQL's bin directory (default: the embedded 18), e.g. "
                        "/usr/lib/postgresql/15/bin")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    index, queue, wal = [], [], []
    with provision("local", pg_bin=args.pg_bin, announce=lambda _m: None) as server:
        print(f"server: PostgreSQL {server.version} (local), app load {args.clients} clients at {args.rate:g}/s")
        for profile in args.profiles.split(","):
            spec = loadgen.load_spec(profile.strip())
            if "index" in parts:
                index.append(index_row(server, spec, args))
            if "queue" in parts:
                queue += queue_rows(server, spec, args)
            if "wal" in parts:
                wal += wal_rows(server, spec, args)
    if index:
        print(f"\nstatement: {STATEMENT}")
        print(f"{'profile':<9}{'messages':>10}{'build alone s':>15}{'blocking s':>12}{'appends blocked':>17}"
              f"{'longest wait s':>16}{'WAL':>12}{'extrapolated s':>16}  at messages")
        print("\n".join(index))
        print("blocking s: how long the statement held SHARE on messages under the live load (appends cannot pass);")
        print("extrapolated s is an extrapolation, not a measurement.")
    if queue:
        print(f"\nstatement: {ADD_COLUMN} behind a {args.long_transaction:g} s long transaction "
              f"(--lock-retries {args.lock_retries})")
        print(f"{'profile':<9}{'messages':>10}  {'lock_timeout':<13}{'waited s':>9}  {'reads n / max s':>14}"
              f"  {'appends n/max s':>14}  {'verdict':<20} tries")
        print("\n".join(queue))
        print("n / max s: app queries queued behind the statement's waiting lock (each client process has one "
              "connection, so n is at most --clients per try) and the longest wait; budget 1 s")
    if wal:
        print(f"\nbackfill: {ONE_STATEMENT.splitlines()[1]} against one batch of 5000 rows; table rewrite: {REWRITE}")
        print(f"{'profile':<9}{'messages':>10}  {'statement':<14}{'WAL small':>12}{'WAL profile':>12}"
              f"{'extrapolated':>14}{'lag s':>12}  verdict")
        print("\n".join(wal))
        budget = load_budgets().wal
        print(f"extrapolated to {args.production_messages:,.0f} messages; lag at {budget.replica_apply_mb_s:g} MB/s, "
              f"allowed {budget.lag_allowed_s:g} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
