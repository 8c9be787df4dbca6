"""What ``chatbench signoff`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.signoff``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from chatbench import loadgen
from chatbench.commands._common import announce, command_line, judged_scenarios, out, require_writable
from chatbench.commands.appqueries import app_queries, role_map
from chatbench.commands.impl.history import location as history_location
from chatbench.commands.impl.history import record_result
from chatbench.commands.impl.rehearse import plan_from
from chatbench.commands.schema_choice import schema_choice
from chatbench.errors import ConfigError
from chatbench.output import print_document
from chatbench.provision.choice import choose_servers
from chatbench.reports.output import write_signoff
from chatbench.settings import Settings, default, refuse_both, where, with_values
from chatbench.signoff import Display, SignoffOptions, run_signoff
from chatbench.signoff.display import show_summary
from chatbench.signoff.options import dsn_cluster

if TYPE_CHECKING:
    from chatbench.rehearse import RehearsalPlan

MIGRATION_ONLY = ("from_file", "from_cmd", "production_messages", "baseline_seconds", "long_transaction",
                  "lock_retries")
"""Settings that only the migration stage reads: given on the command line without a migration, refused
(``--production-messages`` is read by ``--queries`` too: a proven index's build time is extrapolated to it)."""


def options_from(settings: Settings) -> SignoffOptions:
    refuse_both(settings, "schema_from", "schema_from_cmd")
    migration = migration_plan(settings)
    if migration is not None:  # the plan read --models and --queries as rehearse reads them: once
        package, mode, queries, roles = migration.package, migration.drift_mode, migration.queries, migration.roles
    else:
        choice = schema_choice(settings)  # --models imported and checked before any server starts
        app = app_queries(settings)  # --queries parsed and its roles checked before any server starts
        package, mode = choice.package, choice.mode
        queries, roles = (None, role_map()) if app is None else (app.queries, app.roles)
    assert settings.out is not None  # the signoff default is a folder
    servers = choose_servers(settings, announce=announce)
    return SignoffOptions(
        servers=servers,
        profile=settings.profile,
        seed=settings.seed,
        out=Path(settings.out),
        baseline=settings.baseline,
        schema_from=None if settings.schema_from is None else Path(settings.schema_from),
        schema_from_cmd=settings.schema_from_cmd,
        command_timeout=settings.command_timeout,
        load=settings.load,
        load_clients=settings.clients,
        load_seconds=settings.duration,
        rounds=settings.rounds,
        warmup=settings.warmup,
        targets_file=None if settings.targets is None else Path(settings.targets),
        pin_mode=settings.pin,
        use_cache=settings.cache,
        scenario_budget_s=settings.budget if settings.budget > 0 else None,
        scaling_profiles=settings.scaling,
        use_dsn_database=settings.use_dsn_database,
        allow_destructive=settings.allow_destructive,
        start_timeout=settings.start_timeout,
        retries=settings.retries,
        retry_budget_s=settings.retry_budget,
        allow_different_sizes=settings.allow_different_sizes,
        package=package,
        drift_mode=mode,
        queries=queries,
        roles=roles,  # the seed fills the application's tables through it
        production_messages=settings.production_messages,
        command=command_line(),
        migration=migration,
        history=history_location(settings),
        citus_distribution=settings.citus_distribution,
        # A --dsn Citus coordinator, read before anything is created there.
        dsn_cluster=dsn_cluster(servers, use_dsn_database=settings.use_dsn_database),
    )


def migration_plan(settings: Settings) -> RehearsalPlan | None:
    """``--migration`` / ``--migration-cmd``: the rehearsal plan, built and checked as ``chatbench rehearse``
    builds it (before any server starts), its app load at rehearse's rate and the sign-off's ``--clients``.

    ``--long-transaction`` and ``--lock-retries`` keep rehearse's defaults: the sign-off must see the queue
    behind a long transaction that production always has, or it would pass a migration rehearse fails."""
    if settings.migration is None and settings.migration_cmd is None:
        given = [name for name in MIGRATION_ONLY if settings.source(name) == "argument"
                 and not (name == "production_messages" and settings.queries is not None)]  # proofs read it
        if given:
            raise ConfigError(f"{where(settings, given[0])}: only the migration stage reads it; give --migration "
                              "FILE.sql or --migration-cmd CMD too, or drop it")
        return None
    for name in ("schema_from", "schema_from_cmd"):
        if getattr(settings, name) is not None:
            raise ConfigError(f"{where(settings, name)}: with a migration the sign-off verifies the schema the "
                              "migration produces; give the schema before the release as --from FILE.sql or "
                              "--from-cmd CMD instead")
    return plan_from(with_values(settings, rate=default("rate", "rehearse")))


def run(settings: Settings, args: argparse.Namespace) -> int:
    loadgen.load_spec(settings.profile)  # a bad profile is a usage error before any server starts
    require_writable(settings, "the sign-off seeds the data")
    judged_scenarios(settings)  # a targets file that judges nothing, before any server starts
    options = options_from(settings)
    display = Display(out, show_label=len(options.targets()) > 1)
    out.line(Text.assemble(("chatbench signoff", "bold"), f": profile {options.profile}, schema "
                           f"{options.schema_source}, {len(options.targets())} server(s)"))
    signoff, secrets = run_signoff(options, display)
    started = time.perf_counter()
    written = write_signoff(signoff, options.out, secrets=secrets)
    show_summary(signoff, out)
    out.note(f"reports written in {time.perf_counter() - started:.2f} s: "
             f"{', '.join(str(p) for p in written.values())}")
    if any(target.benchmark is not None for target in signoff.targets):
        record_result(settings, written["signoff.json"])
    elif settings.history is not None:
        out.line("history: nothing recorded (no benchmark ran in this sign-off)")
    for line in signoff.failing_lines():
        out.line(Text.assemble(("✗", "red"), f" {line}"))
    for line in signoff.inconclusive_lines():
        out.line(Text.assemble(("?", "yellow"), f" {line}"))
    style = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "bold yellow", "ERROR": "bold yellow"}
    out.line(signoff.headline(), style=style[signoff.verdict])
    if settings.format == "json":
        print_document(written["signoff.json"].read_text(encoding="utf-8"))  # scrubbed like the file
    return signoff.exit_code
