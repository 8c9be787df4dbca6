"""What ``chatbench verify`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.verify``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from chatbench.commands._common import announce, out, require_writable, server_from
from chatbench.commands.appqueries import app_queries, judge_app_queries, role_map
from chatbench.commands.schema_choice import SchemaChoice, schema_choice
from chatbench.errors import ConfigError
from chatbench.loadgen import load_spec, seed
from chatbench.loadgen.result import SeedResult
from chatbench.output import print_document
from chatbench.provision import Server, provision
from chatbench.schema.migrations import build_from_cmd, build_from_sql
from chatbench.schema.rolemap import RoleMap
from chatbench.settings import Settings, refuse_both
from chatbench.verify.render import render_json, render_terminal, write_json
from chatbench.verify.schema_check import verify_schema


def _seed(server: Server, profile: str, seed_number: int, choice: SchemaChoice, roles: RoleMap,
          prebuilt: bool = False) -> SeedResult:
    result = seed(server, load_spec(profile), seed=seed_number, package=choice.package, prebuilt=prebuilt,
                  roles=roles)
    assert isinstance(result, SeedResult)
    return result


def prepare(server: Server, settings: Settings, choice: SchemaChoice, roles: RoleMap) -> SeedResult:
    """Seed ``server``'s database: the seeder builds the schema from the package, unless the application
    builds it its own way first (then the seeder fills the schema it finds: ``prebuilt``), the history
    going into the tables and columns ``roles`` (``[tool.chatbench.map]``) names."""
    if settings.schema_from is None and settings.schema_from_cmd is None:
        return _seed(server, settings.profile, settings.seed, choice, roles)  # the seed shows its own progress
    if settings.schema_from is not None:
        build_from_sql(server, Path(settings.schema_from))
    else:
        assert settings.schema_from_cmd is not None
        build_from_cmd(server, settings.schema_from_cmd, timeout=settings.command_timeout)
    result = _seed(server, settings.profile, settings.seed, choice, roles, prebuilt=True)  # it shows its own progress
    out.note("seeded the pre-built schema: " + ", ".join(f"{table} {rows:,}" for table, rows in result.counts.items()))
    return result


def _one_pg_bin(settings: Settings) -> str | None:
    if len(settings.pg_bin) > 1:
        raise ConfigError("--pg-bin given more than once: verify --url uses one throwaway server; give one")
    return settings.pg_bin[0] if settings.pg_bin else None


def run(settings: Settings, args: argparse.Namespace) -> int:
    refuse_both(settings, "schema_from", "schema_from_cmd")
    choice = schema_choice(settings)  # --models imported and checked before any server starts
    app = app_queries(settings, read_only=settings.url is not None)  # --queries parsed before any server
    roles = role_map() if app is None else app.roles  # the seed and the contract drift read the map
    if settings.url is not None:
        if settings.schema_from is not None or settings.schema_from_cmd is not None:
            raise ConfigError(
                "--url verifies an existing database read-only; --schema-from/--schema-from-cmd "
                "need a throwaway server (drop --url)"
            )

        with (
            provision("dsn", dsn=settings.url, use_dsn_database=True, dsn_field="--url", announce=announce) as server,
            out.stage("verify (read-only)") as stage,
        ):
            # --pg-bin picks the throwaway local server that holds the canonical schema and the probes'
            # schema-only copy (its pg_dump must be at least the live server's version).
            result = verify_schema(server, None, package=choice.package, mode=choice.mode, read_only=True,
                                   progress=stage.step, pg_bin=_one_pg_bin(settings), roles=roles)
            result = judge_app_queries(server, None, app, result, settings, read_only=True, progress=stage.step)
    else:
        load_spec(settings.profile)  # a bad profile is a usage error before any server starts
        require_writable(settings, "verify without --url seeds the data")
        with server_from(settings) as server:
            seed_result = prepare(server, settings, choice, roles)
            server = seed_result.server_for(server)
            with out.stage(f"verify ({choice.mode} against {choice.source})") as stage:
                result = verify_schema(server, seed_result, package=choice.package, mode=choice.mode,
                                       progress=stage.step, roles=roles)
                result = judge_app_queries(server, seed_result.params, app, result, settings, progress=stage.step)
    render_terminal(result, out)
    if settings.json is not None:
        write_json(result, Path(settings.json))
        out.note(f"wrote {settings.json}")
    if settings.format == "json":
        print_document(render_json(result))
    return 0 if result.passed else 1
