"""What ``chatbench rehearse`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.rehearse``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rich.text import Text

from chatbench import loadgen
from chatbench.benchmarks.loadtest.mix import parse_weights
from chatbench.commands._common import announce, command_line, out, server_from
from chatbench.commands.appqueries import app_queries, role_map
from chatbench.commands.impl.history import record_result
from chatbench.commands.schema_choice import schema_choice
from chatbench.errors import ConfigError
from chatbench.output import print_document
from chatbench.provision import resolve_backend
from chatbench.rehearse.budgets import load_budgets
from chatbench.rehearse.stage import SMALLER_PROFILE, RehearsalPlan, rehearsal_server_settings, rehearse, smaller_spec
from chatbench.rehearse.statements import read_migration
from chatbench.reports.rehearsal_output import write_rehearsal
from chatbench.settings import Settings, refuse_both, where


def plan_from(settings: Settings) -> RehearsalPlan:
    """The rehearsal plan, every input checked before any server starts (``signoff --migration`` too)."""
    if settings.migration is None and settings.migration_cmd is None:
        raise ConfigError("rehearse needs the migration: give --migration FILE.sql or --migration-cmd CMD (one)")
    refuse_both(settings, "migration", "migration_cmd")
    refuse_both(settings, "from_file", "from_cmd", hint=" (neither: the canonical schema)")
    spec = loadgen.load_spec(settings.profile)
    if spec.name not in SMALLER_PROFILE:
        raise ConfigError(f"{where(settings, 'profile')}: a rehearsal measures two sizes, the profile and the next "
                          f"smaller one; use one of {', '.join(SMALLER_PROFILE)}")
    if settings.migration_cmd is not None and spec.name == "smoke":
        # A command's statements are seen only by the lock sampler: at smoke's sizes an index build takes a few
        # milliseconds and can finish between two samples, unseen, and the rehearsal would PASS it.
        raise ConfigError(f"{where(settings, 'profile')}: a --migration-cmd's statements are seen only by the lock "
                          "sampler, and at smoke's sizes a short one can finish unseen between two samples; "
                          "rehearse a command at ci or larger, or give the migration as --migration FILE.sql")
    if settings.production_messages < spec.messages.count:
        raise ConfigError(f"{where(settings, 'production_messages')}: fewer messages than the profile's "
                          f"{spec.messages.count:,}; give the production table's size (e.g. 2e9)")
    migration = None if settings.migration is None else read_migration(Path(settings.migration))
    choice = schema_choice(settings)
    app = app_queries(settings)  # --queries parsed and its roles checked before any server starts
    assert settings.rate is not None  # rehearse's default rate
    return RehearsalPlan(
        migration=migration,
        migration_source=f"--migration {settings.migration}" if settings.migration is not None
        else f"--migration-cmd {settings.migration_cmd!r}",
        migration_cmd=settings.migration_cmd,
        before_file=None if settings.from_file is None else Path(settings.from_file),
        before_cmd=settings.from_cmd,
        spec=spec,
        small_spec=smaller_spec(spec),
        seed=settings.seed,
        production_messages=int(settings.production_messages),
        clients=settings.clients,
        rate_per_s=settings.rate,
        weights=parse_weights(settings.mix),
        baseline_s=settings.baseline_seconds,
        budgets=load_budgets(settings.targets),
        timeout_s=settings.command_timeout,
        use_cache=settings.cache,
        command=command_line(),
        package=choice.package,
        drift_mode=choice.mode,
        long_transaction_s=settings.long_transaction,
        lock_retries=settings.lock_retries,
        queries=None if app is None else app.queries,
        roles=role_map() if app is None else app.roles,  # as the sign-off reads it: the seed and verify use it
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    plan = plan_from(settings)
    assert settings.out is not None  # rehearse's default is a folder
    out.line(Text.assemble(("chatbench rehearse", "bold"), f": {plan.migration_source} on {plan.before_source}, "
                           f"profile {plan.spec.name} and {plan.small_spec.name}, {plan.clients} app clients at "
                           f"{plan.rate_per_s:g}/s"
                           + (f" (with {len(plan.queries)} queries of {plan.queries.source})" if plan.queries else "")
                           + f"; verified {plan.drift_mode} against {plan.package.name}"))
    # Resolved once, here: a container must start with production's WAL settings (its settings are its command line).
    resolved = replace(settings, backend=resolve_backend(settings.backend, dsn=settings.dsn, announce=announce))
    with server_from(resolved, server_settings=rehearsal_server_settings(resolved.backend)) as server:
        secrets = {str(server.url.password or "")}
        with out.stage("rehearsal") as stage:
            result = rehearse(server, plan, progress=stage.step)
    written = write_rehearsal(result, Path(settings.out), secrets=secrets)
    for finding in result.findings:
        color = "yellow" if finding.severity == "WARN" else "red"
        out.line(Text.assemble((finding.severity, color), finding.line()[len(finding.severity):]))
    if result.verification is not None:
        for error in result.verification.errors:
            out.line(Text.assemble(("FAIL", "red"), f" verification: {error.message()}"))
    out.note(f"reports: {', '.join(str(p) for p in written.values())}")
    measured = result.measured
    if settings.history is not None and (measured.outcome != "completed" or measured.sampler_error):
        out.line(f"history: nothing recorded (at {measured.messages:,} messages the migration "
                 + (f"{measured.outcome}" if measured.outcome != "completed" else "ran while the lock sampler "
                    "had stopped") + ": its times are not the migration's)")
    else:
        record_result(settings, written["rehearsal.json"])  # nothing without --history
    color = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}.get(result.verdict, "yellow")
    out.line(result.headline(), style=f"bold {color}")
    if settings.format == "json":
        print_document(written["rehearsal.json"].read_text(encoding="utf-8"))  # scrubbed like the file
    return result.exit_code
