"""One command for the pre-release sign-off: provision, schema, drift, seed, integrity, health, plan
contracts, benchmarks vs targets, optional load and baseline comparison; writes signoff.md (PR comment
and $GITHUB_STEP_SUMMARY), signoff.html (self-contained, with plots), signoff.json and JUnit XML.

Several servers side by side (a PostgreSQL upgrade is a release too): --pg-versions 15,18, or
repeated --pg-bin DIR / --image IMAGE. Exit 0 PASS, 1 FAIL, 2 could not run (ERROR).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from chatbench.commands._common import console
from chatbench.provision import BACKENDS
from chatbench.settings import resolve

if TYPE_CHECKING:
    from chatbench.signoff import SignoffOptions

NAME = "signoff"
HELP = "run the whole pre-release sign-off and write signoff.md/.html/.json + JUnit (exit 0 PASS / 1 FAIL / 2 error)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="release", help="loadgen profile to seed (default release: 1M messages)")
    parser.add_argument("--seed", type=int, default=1, help="data seed (default 1, as the benchmark suite)")
    parser.add_argument("--out", default=None, help="folder for the reports (default: settings 'out', i.e. ./out)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="FILE",
        help="compare the benchmarks with this signoff.json or benchmark result JSON",
    )
    parser.add_argument("--load", action="store_true", help="also run a short concurrent load (chatbench load)")
    parser.add_argument("--load-clients", type=int, default=2, help="clients for --load (default 2)")
    parser.add_argument("--load-seconds", type=float, default=5.0, help="measured seconds for --load (default 5)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per scenario (default: the profile's)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up rounds per scenario (default: the profile's)")
    parser.add_argument(
        "--budget",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="at most this many seconds of timed rounds per scenario (default 3; 0 = every round)",
    )
    parser.add_argument(
        "--targets", type=Path, default=None, metavar="FILE", help="targets file (default benchmarks/targets.toml)"
    )
    parser.add_argument("--pin", default="same-core", help="CPU placement of client and backend (default same-core)")
    parser.add_argument(
        "--scaling",
        default=None,
        metavar="PROFILES",
        help="comma-separated smaller profiles re-measured for the scaling plot "
        "(default: every profile below --profile; 'none' to skip)",
    )
    parser.add_argument("--no-cache", action="store_true", help="seed afresh instead of reusing the snapshot cache")
    parser.add_argument(
        "--schema-from",
        type=Path,
        default=None,
        metavar="FILE.sql",
        help="build the schema with this SQL file (the application's migrations) instead of the models",
    )
    parser.add_argument(
        "--schema-from-cmd",
        default=None,
        metavar="CMD",
        help="build the schema with this command (e.g. 'alembic upgrade head'); DATABASE_URL is set",
    )
    group = parser.add_argument_group("servers")
    group.add_argument("--backend", default=None, help=f"{' | '.join(BACKENDS)} (default auto)")
    group.add_argument(
        "--pg-bin",
        action="append",
        default=[],
        metavar="DIR",
        help="PostgreSQL bin dir for the local backend; repeat for several versions side by side",
    )
    group.add_argument("--image", action="append", default=[], help="container image; repeat for several versions")
    group.add_argument(
        "--pg-versions",
        default=None,
        metavar="LIST",
        help="major versions side by side, e.g. 15,18 (local binaries or postgres:N images)",
    )
    group.add_argument("--dsn", default=None, help="an existing server; chatbench creates and drops its own database")
    group.add_argument("--use-dsn-database", action="store_true", help="work in the DSN's own database")
    group.add_argument(
        "--allow-destructive", action="store_true", help="allow seeding in a database chatbench did not create"
    )


def options_from(args: argparse.Namespace) -> SignoffOptions:
    from chatbench.errors import ConfigError
    from chatbench.signoff import SignoffOptions, choose_servers

    settings = resolve(
        {
            "backend": args.backend,
            "pg_bin": args.pg_bin[0] if len(args.pg_bin) == 1 else None,
            "image": args.image[0] if len(args.image) == 1 else None,
            "dsn": args.dsn,
            "out": args.out,
        }
    )
    if args.schema_from is not None and args.schema_from_cmd is not None:
        raise ConfigError("--schema-from and --schema-from-cmd: give one of them, not both")
    if args.baseline is not None and not args.baseline.is_file():
        raise ConfigError(f"--baseline {args.baseline}: no such file; pass a signoff.json or a benchmark result JSON")
    pg_bins = list(args.pg_bin) or ([settings.pg_bin] if settings.pg_bin and not args.image else [])
    images = list(args.image) or ([settings.image] if settings.image and settings.backend == "container" else [])
    servers = choose_servers(
        settings.backend,
        pg_bins=pg_bins,
        images=images,
        pg_versions=[v for v in (args.pg_versions or "").split(",") if v.strip()],
        dsn=settings.dsn,
        announce=lambda m: console.print(f"[dim]{m}[/dim]"),
    )
    scaling = None
    if args.scaling is not None:
        scaling = (
            ()
            if args.scaling.strip().lower() in ("", "none")
            else tuple(p.strip() for p in args.scaling.split(",") if p.strip())
        )
    for name, value in (("--rounds", args.rounds), ("--warmup", args.warmup), ("--load-clients", args.load_clients)):
        if value is not None and value < (0 if name == "--warmup" else 1):
            raise ConfigError(f"{name} {value}: must be {'0 or more' if name == '--warmup' else 'at least 1'}")
    return SignoffOptions(
        servers=servers,
        profile=args.profile,
        seed=args.seed,
        out=Path(settings.out),
        baseline=args.baseline,
        schema_from=args.schema_from,
        schema_from_cmd=args.schema_from_cmd,
        load=args.load,
        load_clients=args.load_clients,
        load_seconds=args.load_seconds,
        rounds=args.rounds,
        warmup=args.warmup,
        targets_file=args.targets,
        pin_mode=args.pin,
        use_cache=not args.no_cache,
        scenario_budget_s=args.budget if args.budget > 0 else None,
        scaling_profiles=scaling,
        use_dsn_database=args.use_dsn_database,
        allow_destructive=args.allow_destructive,
        command="chatbench " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )


def run(args: argparse.Namespace) -> int:
    import time

    from chatbench import loadgen
    from chatbench.reports.output import write_signoff
    from chatbench.signoff import Display, run_signoff, summary_table

    options = options_from(args)
    loadgen.load_spec(options.profile)  # a bad profile is a usage error before any server starts
    display = Display(console, show_label=len(options.servers) > 1)
    console.print(
        f"[b]chatbench signoff[/b]: profile {options.profile}, schema {options.schema_source}, "
        f"{len(options.servers)} server(s)"
    )
    signoff, secrets = run_signoff(options, display)
    started = time.perf_counter()
    written = write_signoff(signoff, options.out, secrets=secrets)
    console.print(summary_table(signoff))
    console.print(
        f"[dim]reports written in {time.perf_counter() - started:.2f} s: "
        f"{', '.join(str(p) for p in written.values())}[/dim]"
    )
    for line in signoff.failing_lines():
        console.print(f"[red]✗[/red] {line}", soft_wrap=True)
    color = {"PASS": "green", "FAIL": "red", "ERROR": "yellow"}[signoff.verdict]
    console.print(f"[b {color}]{signoff.headline()}[/]")
    return signoff.exit_code
