"""The first two stages on a server: provision it, then build the schema (canonical or the application's)."""

from __future__ import annotations

from dataclasses import replace

from chatbench.provision import Server, resolve_backend
from chatbench.provision.choice import provision_choice
from chatbench.rehearse.stage import rehearsal_server_settings
from chatbench.schema.migrations import build_from_cmd, build_from_sql
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.options import SignoffOptions


def provision_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    options, choice = ctx.options, ctx.choice
    server_settings = None
    if options.migration is not None:  # rehearsed with production's WAL settings: a container starts with them
        choice = replace(choice, backend=resolve_backend(choice.backend, dsn=choice.dsn, announce=ctx.display.note))
        server_settings = rehearsal_server_settings(choice.backend)
    with ctx.rec.stage("provision") as note:
        server = ctx.stack.enter_context(
            provision_choice(choice, use_dsn_database=options.use_dsn_database,
                             allow_destructive=options.allow_destructive, start_timeout=options.start_timeout,
                             announce=ctx.display.note, run_dir=ctx.run_dir, server_settings=server_settings)
        )
        if server.url.password:
            ctx.secrets.add(str(server.url.password))
        label = ctx.rec.label = f"PostgreSQL {server.version} ({server.backend})"
        note.detail = f"{server.backend}, PostgreSQL {server.version}, {server.display_url}"
    return replace(evidence, server=server, label=label)


def schema_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    """The application's schema is built here; the package's (canonical or --models) is built by the seed."""
    options = ctx.options
    server = evidence.need_server()
    with ctx.rec.stage("schema") as note:
        if build_application_schema(server, options):
            note.detail = f"built by {options.schema_source}"
        else:
            note.detail = ("canonical models (built whole, then taken apart around the bulk load)"
                           if options.package.canonical else f"--models {options.package.name}, built by the seed")
    return evidence


def build_application_schema(server: Server, options: SignoffOptions) -> bool:
    """The application's schema (``--schema-from``/``--schema-from-cmd``) built on ``server``'s database; False
    when the schema is the package's, which the seed builds. The scaling stage's smaller databases are built
    here too, so they are measured on the application's schema, not the canonical one."""
    if options.schema_from is not None:
        build_from_sql(server, options.schema_from)
        return True
    if options.schema_from_cmd is not None:
        build_from_cmd(server, options.schema_from_cmd, timeout=options.command_timeout)
        return True
    return False
