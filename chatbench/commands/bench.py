"""Benchmark the canonical history queries against targets (the pytest-benchmark suite in ``benchmarks/``).

Runs ``pytest benchmarks`` in-process with the chatbench options, so ``chatbench bench`` and
``pytest benchmarks`` are the same measurement: a throwaway server seeded with the profile
(snapshot cache reused), one benchmark per scenario, a table of p50/p95/p99 with target and
PASS/FAIL, the pytest-benchmark JSON (``--json``, raw samples in extra_info) and the chatbench
results JSON (``--results``). ``--fidelity`` instead compares the harness with pgbench -M prepared.
Exit 0 when every target is met, 1 when one is missed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from chatbench.errors import ChatbenchError

NAME = "bench"
HELP = "benchmark the history queries against targets (p50/p95/p99 table, JSON with raw samples)"
USES_SERVER = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="ci", help="data profile to seed or reuse (default ci)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--targets", default=None, metavar="FILE",
                        help="targets TOML (default benchmarks/targets.toml)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per scenario (default by profile)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up rounds per scenario (default by profile)")
    parser.add_argument("--pin", choices=("same-core", "off"), default="same-core",
                        help="CPU placement of client and server backend (default same-core)")
    parser.add_argument("--driver", choices=("psycopg", "libpq"), default="psycopg",
                        help="psycopg: what the app pays (default); libpq: what the database costs, pgbench-like")
    parser.add_argument("--json", default="out/bench.json", metavar="FILE",
                        help="pytest-benchmark JSON (default out/bench.json)")
    parser.add_argument("--results", default=None, metavar="FILE",
                        help="chatbench results JSON (default out/bench-run.json, with --fidelity out/fidelity.json)")
    parser.add_argument("-k", dest="select", default=None, metavar="EXPR", help="only scenarios matching (pytest -k)")
    parser.add_argument("--fidelity", action="store_true",
                        help="compare harness p50 with pgbench -M prepared per query instead of running the suite")


def _server_environment(args: argparse.Namespace) -> None:
    """Hand --pg-bin/--image/--dsn to the suite's provisioning (it resolves settings from the environment)."""
    for option, env in (("pg_bin", "CHATBENCH_PG_BIN"), ("image", "CHATBENCH_IMAGE"), ("dsn", "CHATBENCH_DSN")):
        value = getattr(args, option, None)
        if value is not None:
            os.environ[env] = str(value)


def run(args: argparse.Namespace) -> int:
    if args.fidelity:
        return _fidelity(args)
    import pytest

    from chatbench import benchmarks
    _server_environment(args)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    argv = [str(Path(benchmarks.__file__).parent), "-q",
            "--chatbench-profile", args.profile, "--chatbench-seed", str(args.seed),
            "--chatbench-pin", args.pin, "--chatbench-driver", args.driver,
            "--chatbench-results", args.results or "out/bench-run.json",
            "--benchmark-json", args.json, "--benchmark-sort", "name"]
    if args.backend is not None:
        argv += ["--chatbench-backend", args.backend]
    if args.targets is not None:
        argv += ["--chatbench-targets", args.targets]
    if args.rounds is not None:
        argv += ["--chatbench-rounds", str(args.rounds)]
    if args.warmup is not None:
        argv += ["--chatbench-warmup", str(args.warmup)]
    if args.select is not None:
        argv += ["-k", args.select]
    code = int(pytest.main(argv))
    if code == 0:
        return 0
    if code == 1:
        return 1  # a benchmark ran and missed its target (the one-line reason is in the output)
    raise ChatbenchError(f"the benchmark suite did not run to a verdict (pytest exit code {code}); "
                         "see the output above")


def _fidelity(args: argparse.Namespace) -> int:
    from chatbench import loadgen
    from chatbench.benchmarks import fidelity
    from chatbench.benchmarks.results import BenchmarkRun, write
    from chatbench.benchmarks.session import open_session
    from chatbench.benchmarks.targets import load_targets
    from chatbench.commands._common import console, server_from

    with server_from(args) as server:
        seed = loadgen.seed(server, loadgen.load_spec(args.profile), seed=args.seed, use_cache=True)
        if seed.database != server.database:
            server = server.with_database(seed.database, owns_database=True)
        with open_session(server, seed, profile=args.profile, targets=load_targets(args.targets),
                          pin_mode=args.pin) as session:
            console.print(f"[dim]{session.pinning.describe()}[/dim]")
            with console.status("fidelity") as status:
                report = fidelity.check(server, session, rounds=args.rounds or 3000,
                                        warmup=args.warmup if args.warmup is not None else 300,
                                        progress=lambda message: status.update(f"fidelity: {message}"))
            run = BenchmarkRun(kind="fidelity", run_id=session.run_id, created_at=session.to_run().created_at,
                               environment=session.environment, notes={"fidelity": report.to_dict()})
    print(fidelity.render(report))
    path = write(run, args.results or "out/fidelity.json")
    console.print(f"results: {path}")
    return 0
