"""Verify a database against the canonical schema: drift, static index health, plan contracts.

Without ``--url``: provisions a throwaway server, seeds it with ``--profile`` (optionally building the
schema the application's way first: ``--schema-from`` / ``--schema-from-cmd``) and verifies it.
With ``--url``: verifies an existing database read-only (scenarios discovered from its data; the
behaviour probes run on a schema-only copy on a throwaway local server; nothing is written to, or
created on, that server).
Exit 0 when every check passes, 1 when any error-severity finding fails the verdict.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from chatbench.commands._common import console, server_from, settings_from
from chatbench.errors import ConfigError
from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.provision.databases import temporary_database

NAME = "verify"
HELP = "check drift, index health and plan contracts (exit 1 on FAIL)"
USES_SERVER = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=None, help="verify this existing database read-only (postgresql://user:password@host:port/db)"
    )
    parser.add_argument("--profile", default="ci", help="loadgen profile to seed when no --url is given (default ci)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the result as JSON")
    parser.add_argument(
        "--schema-from",
        type=Path,
        default=None,
        metavar="FILE.sql",
        help="build the schema by running this SQL file instead of the canonical models",
    )
    parser.add_argument(
        "--schema-from-cmd",
        default=None,
        metavar="CMD",
        help="build the schema with this command (e.g. 'alembic upgrade head'); "
        "DATABASE_URL and CHATBENCH_DATABASE_URL point at the throwaway database",
    )


def _seed(server: Server, profile: str) -> SeedResult:
    try:
        from chatbench.loadgen import load_spec, seed
    except ImportError as exc:
        raise ConfigError(
            f"--profile {profile}: the loader is not available ({exc}); install chatbench fully"
        ) from None
    result = seed(server, load_spec(profile))
    assert isinstance(result, SeedResult)
    return result


def prepare(server: Server, args: argparse.Namespace) -> SeedResult:
    """Seed ``server``'s database, building its schema the application's way first when asked."""
    from chatbench.loadgen.transplant import transplant
    from chatbench.schema.migrations import build_from_cmd, build_from_sql

    if args.schema_from is None and args.schema_from_cmd is None:
        with console.status(f"seeding profile {args.profile}"):
            return _seed(server, args.profile)
    if args.schema_from is not None:
        build_from_sql(server, args.schema_from)
    else:
        build_from_cmd(server, args.schema_from_cmd)
    with temporary_database(server, "cbv_seed") as sibling:
        with console.status(f"seeding profile {args.profile} into a canonical sibling database"):
            result = _seed(sibling, args.profile)
        source = _seeded_database(sibling, result)
        with console.status("loading the seeded rows into the pre-built schema"):
            counts = transplant(source, server)
    console.print(f"[dim]loaded into the pre-built schema: {counts}[/dim]")
    return replace(result, database=server.database)


def _seeded_database(server: Server, result: SeedResult) -> Server:
    """The database the seed actually filled (the loader's cache may hand back another one)."""
    if result.database == server.database:
        return server
    return server.with_database(result.database, owns_database=True)


def run(args: argparse.Namespace) -> int:
    from chatbench.verify import verify
    from chatbench.verify.render import render_terminal, write_json

    if args.schema_from is not None and args.schema_from_cmd is not None:
        raise ConfigError("--schema-from and --schema-from-cmd: give one of them, not both")
    if args.url is not None:
        if args.schema_from is not None or args.schema_from_cmd is not None:
            raise ConfigError(
                "--url verifies an existing database read-only; --schema-from/--schema-from-cmd "
                "need a throwaway server (drop --url)"
            )
        from chatbench.provision import provision

        with (
            provision(
                "dsn", dsn=args.url, use_dsn_database=True, announce=lambda m: console.print(f"[dim]{m}[/dim]")
            ) as server,
            console.status("verifying (read-only)") as status,
        ):
            # --pg-bin picks the throwaway local server that holds the canonical schema and the probes'
            # schema-only copy (its pg_dump must be at least the live server's version).
            result = verify(
                server,
                None,
                read_only=True,
                progress=lambda n: status.update(f"verifying: {n}"),
                pg_bin=settings_from(args).pg_bin,
            )
    else:
        with server_from(args) as server:
            seed_result = prepare(server, args)
            server = _seeded_database(server, seed_result)
            with console.status("verifying") as status:
                result = verify(server, seed_result, progress=lambda n: status.update(f"verifying: {n}"))
    render_terminal(result, console)
    if args.json is not None:
        write_json(result, args.json)
        console.print(f"[dim]wrote {args.json}[/dim]")
    return 0 if result.passed else 1
