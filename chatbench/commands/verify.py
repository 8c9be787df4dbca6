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
from pathlib import Path

from chatbench.commands._common import SERVER_SETTINGS, announce, out, require_writable, server_from
from chatbench.errors import ConfigError
from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.settings import Settings, refuse_both

NAME = "verify"
HELP = "check drift, index health and plan contracts (exit 1 on FAIL)"
SETTINGS = (*SERVER_SETTINGS, "url", "profile", "seed", "json", "schema_from", "schema_from_cmd", "command_timeout",
            "format")


def _seed(server: Server, profile: str, seed_number: int) -> SeedResult:
    try:
        from chatbench.loadgen import load_spec, seed
    except ImportError as exc:
        raise ConfigError(
            f"--profile {profile}: the loader is not available ({exc}); install chatbench fully"
        ) from None
    result = seed(server, load_spec(profile), seed=seed_number)
    assert isinstance(result, SeedResult)
    return result


def prepare(server: Server, settings: Settings) -> SeedResult:
    """Seed ``server``'s database, building its schema the application's way first when asked."""
    from chatbench.loadgen.transplant import seed_into_prebuilt
    from chatbench.schema.migrations import build_from_cmd, build_from_sql

    if settings.schema_from is None and settings.schema_from_cmd is None:
        return _seed(server, settings.profile, settings.seed)  # the seed shows its own progress
    if settings.schema_from is not None:
        build_from_sql(server, Path(settings.schema_from))
    else:
        assert settings.schema_from_cmd is not None
        build_from_cmd(server, settings.schema_from_cmd, timeout=settings.command_timeout)
    out.note(f"seeding profile {settings.profile} into a canonical sibling database")
    result, counts = seed_into_prebuilt(server, lambda sibling: _seed(sibling, settings.profile, settings.seed),
                                        prefix="cbv_seed",
                                        loading=lambda: out.stage("loading the seeded rows into the pre-built schema"))
    out.note(f"loaded into the pre-built schema: {counts}")
    return result


def _one_pg_bin(settings: Settings) -> str | None:
    if len(settings.pg_bin) > 1:
        raise ConfigError("--pg-bin given more than once: verify --url uses one throwaway server; give one")
    return settings.pg_bin[0] if settings.pg_bin else None


def run(settings: Settings, args: argparse.Namespace) -> int:
    from chatbench.output import print_document
    from chatbench.verify import verify
    from chatbench.verify.render import render_json, render_terminal, write_json

    refuse_both(settings, "schema_from", "schema_from_cmd")
    if settings.url is not None:
        if settings.schema_from is not None or settings.schema_from_cmd is not None:
            raise ConfigError(
                "--url verifies an existing database read-only; --schema-from/--schema-from-cmd "
                "need a throwaway server (drop --url)"
            )
        from chatbench.provision import provision

        with (
            provision("dsn", dsn=settings.url, use_dsn_database=True, dsn_field="--url", announce=announce) as server,
            out.stage("verify (read-only)") as stage,
        ):
            # --pg-bin picks the throwaway local server that holds the canonical schema and the probes'
            # schema-only copy (its pg_dump must be at least the live server's version).
            result = verify(server, None, read_only=True, progress=stage.step, pg_bin=_one_pg_bin(settings))
    else:
        from chatbench.loadgen import load_spec

        load_spec(settings.profile)  # a bad profile is a usage error before any server starts
        require_writable(settings, "verify without --url seeds the data")
        with server_from(settings) as server:
            seed_result = prepare(server, settings)
            server = seed_result.server_for(server)
            with out.stage("verify") as stage:
                result = verify(server, seed_result, progress=stage.step)
    render_terminal(result, out)
    if settings.json is not None:
        write_json(result, Path(settings.json))
        out.note(f"wrote {settings.json}")
    if settings.format == "json":
        print_document(render_json(result))
    return 0 if result.passed else 1
