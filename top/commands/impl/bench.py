"""What ``chatbench bench`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.bench``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from _pytest.mark.expression import Expression

from chatbench import loadgen, output
from chatbench.benchmarks import fidelity
from chatbench.benchmarks.app_scenarios import scenario_name
from chatbench.benchmarks.publish import show_run, write_bench_json
from chatbench.benchmarks.results import BenchmarkRun, write
from chatbench.benchmarks.scenarios import SCENARIOS, Scenario
from chatbench.benchmarks.session import measure_scenarios, open_session
from chatbench.benchmarks.targets import load_targets
from chatbench.commands._common import judged_scenarios, out, require_writable, server_from
from chatbench.commands.appqueries import AppQueryChoice, app_queries, role_map
from chatbench.commands.impl.history import record_result
from chatbench.commands.schema_choice import schema_choice
from chatbench.errors import ChatbenchError, ConfigError
from chatbench.provision import Server
from chatbench.provision.choice import one_server
from chatbench.reports.signoff import EXIT_CODES
from chatbench.schema.appqueries import SCENARIO_ROLES
from chatbench.schema.migrations import build_from_cmd, build_from_sql
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.settings import Settings, refuse_both, where
from chatbench.signoff.recorder import one_line

if TYPE_CHECKING:
    from chatbench.loadgen.result import SeedResult
    from chatbench.schema.package import SchemaPackage


@dataclass(frozen=True)
class BenchInputs:
    """What ``check_inputs`` read and checked, handed to the run so nothing is read twice."""

    scenarios: tuple[Scenario, ...]
    app: AppQueryChoice | None  # --queries
    package: SchemaPackage  # the schema the seed builds (canonical or --models)
    select: Callable[[str], bool] | None = None  # -k: picks the app:QUERY/ROLE scenarios once they are bound


def check_inputs(settings: Settings) -> BenchInputs:
    """The scenarios to measure, once everything a run would refuse is refused, before any server starts.

    A bad ``--targets``, ``-k``, server option, ``--models`` or ``--queries`` is one line naming the option;
    a selection of scenarios none of which has a budget for the profile would judge nothing and PASS, so
    it is refused too. ``-k`` picks the application's scenarios (``app:QUERY/ROLE``) by the same rule; they
    are bound to the data once the server runs, so here it is checked against every role each query could
    take (``app_candidates``), and the run applies it to the ones bound (``measure_scenarios``' ``select``).
    """
    require_writable(settings, "bench seeds the data")
    refuse_both(settings, "schema_from", "schema_from_cmd")
    one_server(settings)  # the server options agree
    package = schema_choice(settings).package  # --models imports and declares tables (the seed builds from it)
    app = app_queries(settings)  # --queries parses and binds to roles
    judged = judged_scenarios(settings)
    if settings.select is None:
        return BenchInputs(SCENARIOS, app, package)
    picks = scenario_filter(settings.select)
    chosen = [s.name for s in SCENARIOS if picks(s.name)]
    candidates = () if app is None else app_candidates(app)
    apps = [name for name in candidates if picks(name)]  # an application query's scenario has targets
    if not chosen and not apps:
        also = (f"; the application's are app:QUERY/ROLE of {', '.join(q.name for q in app.queries)}"
                if app is not None else "")
        raise ConfigError(f"{where(settings, 'select')}: matches no scenario; scenarios are "
                          f"{', '.join(s.name for s in SCENARIOS)}{also}")
    if not judged & set(chosen) and not apps:
        raise ConfigError(f"{where(settings, 'select')}: selects only scenarios without a budget for profile "
                          f"{settings.profile} ({', '.join(chosen)}), so nothing would be judged")
    return BenchInputs(tuple(s for s in SCENARIOS if s.name in chosen), app, package, picks)


def app_candidates(app: AppQueryChoice) -> tuple[str, ...]:
    """``app:QUERY/ROLE`` for every scenario role each query could be bound to (``SCENARIO_ROLES`` its
    ``-- scenarios:`` line allows, and ``all``): which it is bound to is known only on the data."""
    return tuple(scenario_name(q.name, role) for q in app.queries for role in (*SCENARIO_ROLES, "all")
                 if q.allows(role))


def scenario_filter(expression: str) -> Callable[[str], bool]:
    """Whether a pytest ``-k`` expression picks a scenario, by name (its keyword rules: case-insensitive
    substrings of the suite's test ids), so ``-k`` selects the same scenarios here as in
    ``pytest benchmarks -k``; an application's ``app:QUERY/ROLE`` scenario by its name the same way."""
    try:
        compiled = Expression.compile(expression)
    except SyntaxError as exc:
        raise ConfigError(f"-k {expression}: not a valid expression ({exc.msg}); e.g. -k 'keyset and not last'") \
            from None

    def picks(name: str) -> bool:
        keywords = (f"test_history[{name}]", name, "test_history", "test_history.py", "benchmarks", "parametrize")
        return compiled.evaluate(lambda sub, /, **kwargs: not kwargs and any(sub.lower() in k.lower()
                                                                           for k in keywords))

    return picks


def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.fidelity:
        return _fidelity(settings)
    inputs = check_inputs(settings)
    scenarios, app = inputs.scenarios, inputs.app
    assert settings.json is not None and settings.results is not None  # the bench command's defaults are files
    document = settings.format == "json"
    report = output.stderr() if document else output.stdout()  # with --format json, stdout holds the document alone
    try:
        with (_seeded(settings, inputs.package, role_map() if app is None else app.roles) as (server, seeded),
              report.stage("benchmarks", total=len(scenarios), unit="scenarios") as progress):
            measured = measure_scenarios(
                server, seeded, profile=settings.profile, targets=load_targets(settings.targets),
                scenarios=scenarios, pin_mode=settings.pin, rounds=settings.rounds, warmup=settings.warmup,
                driver=settings.driver, retries=settings.retries, retry_budget_s=settings.retry_budget,
                progress=progress, app=None if app is None else app.queries,
                roles=CANONICAL if app is None else app.roles, select=inputs.select)
    except psycopg.Error as exc:  # no verdict: one line and exit 2, as a sign-off's ERROR
        raise ChatbenchError(f"the benchmarks stopped: the server failed ({one_line(exc)})") from None
    run, pinning = measured.run, measured.pinning.describe()
    results = write(run, settings.results)
    write_bench_json(run, pinning, settings.json)
    for result in run.scenarios:  # a missed target first, in one line, as the suite's failing test says it
        if result.failures:
            report.line("; ".join(result.failures), style="bold red")
    show_run(run, report, pinning=pinning, path=results)
    record_result(settings, results)
    if document:
        output.print_document(results.read_text(encoding="utf-8"))
    return EXIT_CODES.get(run.verdict, 0)  # NO TARGET: nothing judged missed


@contextlib.contextmanager
def _seeded(settings: Settings, package: SchemaPackage, roles: RoleMap) -> Iterator[tuple[Server, SeedResult]]:
    """(server pointed at the seeded database, SeedResult): the server the settings ask for, seeded with the
    profile through the snapshot cache, in the schema built from the package (canonical or ``--models``), or
    in the application's own (``--schema-from``/``--schema-from-cmd``, built first and then filled through
    ``roles``, the map of its tables)."""
    with server_from(settings) as server:
        if settings.schema_from is not None:
            build_from_sql(server, Path(settings.schema_from))
        elif settings.schema_from_cmd is not None:
            build_from_cmd(server, settings.schema_from_cmd, timeout=settings.command_timeout)
        prebuilt = settings.schema_from is not None or settings.schema_from_cmd is not None
        seeded = loadgen.seed(server, loadgen.load_spec(settings.profile), seed=settings.seed,
                              use_cache=settings.cache, package=package, prebuilt=prebuilt, roles=roles)
        yield seeded.server_for(server), seeded


def _fidelity(settings: Settings) -> int:
    require_writable(settings, "bench seeds the data")
    with (_seeded(settings, schema_choice(settings).package, role_map()) as (server, seed),
          open_session(server, seed, profile=settings.profile, targets=load_targets(settings.targets),
                       pin_mode=settings.pin) as session):
        out.note(session.pinning.describe())
        with out.stage("fidelity") as stage:
            report = fidelity.check(server, session, rounds=3000 if settings.rounds is None else settings.rounds,
                                    warmup=settings.warmup if settings.warmup is not None else 300,
                                    progress=stage.step)
        run = BenchmarkRun(kind="fidelity", run_id=session.run_id, created_at=session.to_run().created_at,
                           environment=session.environment, fidelity=report)
    given = settings.results if settings.source("results") != "default" else None
    path = write(run, "out/fidelity.json" if given is None else given)
    if settings.history is not None:
        out.line("history: nothing recorded (a --fidelity run measures the harness, not the schema's queries)")
    if settings.format == "json":
        out.line(fidelity.render(report))
        output.print_document(Path(path).read_text(encoding="utf-8"))
    else:
        print(fidelity.render(report))
    out.line(f"results: {path}")
    return 0
