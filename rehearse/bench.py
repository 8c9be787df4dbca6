"""Benchmark (not a test): what a CREATE INDEX without CONCURRENTLY on messages costs the chat.

python -m chatbench.rehearse.bench [--profiles ci,release] [--production-messages 1e9] [--pg-bin DIR]

Per profile, on one throwaway server: the index build time alone (the statement on an idle clone of
the seeded database, median of 3), then the rehearsal of the same statement under the live load: how
long it held SHARE on messages (the appends' blocking time), the app appends seen blocked and their
longest wait, and the blocking time extrapolated linearly to the production size from the profile and
the next smaller one. Wall-clock numbers on a shared machine are noisy: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg
from chatbench.benchmarks.loadtest.mix import DEFAULT_WEIGHTS
from chatbench.rehearse.budgets import load_budgets
from chatbench.rehearse.stage import RehearsalPlan, rehearse, smaller_spec
from chatbench.rehearse.statements import split_sql

from chatbench import loadgen
from chatbench.provision import Server, provision
from chatbench.provision.databases import temporary_database

STATEMENT = "CREATE INDEX ix_bench_messages_user_id_created_at ON messages (user_id, created_at)"


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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chatbench.rehearse.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="ci,release")
    parser.add_argument("--production-messages", type=float, default=1e9)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--pg-bin", default=None)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"statement: {STATEMENT}")
    header = (f"{'profile':<9}{'messages':>10}{'build alone s':>15}{'blocking s':>12}{'appends blocked':>17}"
              f"{'longest wait s':>16}{'extrapolated s':>16}  at messages")
    rows = []
    with provision("local", pg_bin=args.pg_bin, announce=lambda _m: None) as server:
        print(f"server: PostgreSQL {server.version} (local), app load {args.clients} clients at {args.rate:g}/s")
        for profile in args.profiles.split(","):
            spec = loadgen.load_spec(profile.strip())
            alone = build_alone(server, spec)
            plan = RehearsalPlan(
                migration=split_sql(STATEMENT + ";", "bench"), migration_source=STATEMENT, migration_cmd=None,
                before_file=None, before_cmd=None, spec=spec, small_spec=smaller_spec(spec), seed=1,
                production_messages=int(args.production_messages), clients=args.clients, rate_per_s=args.rate,
                weights=DEFAULT_WEIGHTS, baseline_s=1.0, budgets=load_budgets(), timeout_s=3600, verify=False)
            result = rehearse(server, plan)
            run = result.measured.statements[0]
            estimate = next(e for e in result.estimates if e.table == "messages" and e.access == "appends")
            blocking = run.blocking_s("messages", "appends")
            rows.append(f"{profile:<9}{spec.messages.count:>10,}{alone:>15.3f}{blocking:>12.3f}"
                        f"{run.blocked['appends'].count:>17}{run.blocked['appends'].longest_s:>16.3f}"
                        f"{estimate.extrapolated_s:>16.1f}  {estimate.production_messages:,} "
                        f"(linear from {estimate.small_messages:,} and {estimate.large_messages:,})")
    print(header)
    print("\n".join(rows))
    print("blocking s: how long the statement held SHARE on messages under the live load (appends cannot pass);")
    print("extrapolated s is an extrapolation, not a measurement.")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
