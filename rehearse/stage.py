"""The rehearsal stage: one call, ``rehearse(server, plan)``, returning a frozen ``Rehearsal``.

For each of two data sizes (the profile's and a smaller one), smaller first:

1. seed the canonical history (seed cache), or, when the before-schema is the application's own
   (``--from`` / ``--from-cmd``), build it and seed it where it stands (``loadgen.seed(...,
   prebuilt=True)``): that database is the template of the run;
2. clone the template, measure the locks the app's queries take, start the live load (open loop,
   fixed rate: the canonical operations of ``--mix`` and the application's own queries of ``--queries``,
   ``appload``) and the lock sampler, wait ``baseline_s``, open the long transaction (``longtx``: it
   reads the tables the app uses and commits ``long_transaction_s`` after the migration started), run
   the migration (a statement that gives up on its lock_timeout is retried, ``lock_retries``), wait
   ``baseline_s``; read what the migration left behind (``residue``);
3. stop, analyse (``analysis``), and at the profile's size verify the migrated schema
   (``verify.schema_check.verify_schema``: drift against the schema the release must reach, health, plan
   contracts): the application's models exactly when given (``--models``), else the canonical
   contracts in contract mode, so a lock-safe release that adds a column passes and one that drops
   or weakens a canonical contract fails, naming it. The role map (``[tool.chatbench.map]``) is read
   there as the sign-off reads it, and the seed of an application's before-schema fills its tables
   through it.

The WAL is measured as a production primary writes it (``production_wal``): a throwaway local server, which
runs with ``wal_level = minimal`` and ``full_page_writes = off`` for benchmarks (where a new index or a
rewritten table writes no WAL at all, and a changed page no full-page image), is restarted with ``replica``
and ``on`` for the rehearsal and restored afterwards, and each migration starts right after a CHECKPOINT,
as a production table's pages were last written before its last checkpoint.

Then the blocking times are extrapolated to the production size and judged (``rules``). Every
database, process and thread this creates is dropped or stopped on every way out (errors, Ctrl-C).
A migration that fails or hangs at the smaller size is not run again at the larger one.

``rehearsed(server, plan)`` is the same as a context manager that keeps the migrated database of
the profile's size (vacuumed and analyzed) until its block ends: a sign-off with ``--migration``
verifies and benchmarks that database instead of a separately built schema (``plan.verified_by``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from chatbench import loadgen
from chatbench.errors import ChatbenchError
from chatbench.faults import checkpoint
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.spec import Spec
from chatbench.provision import BENCHMARK_SETTINGS, Server
from chatbench.provision.databases import temporary_database
from chatbench.rehearse.analysis import Analysis, Relation, relations
from chatbench.rehearse.appclient import APP_PREFIX
from chatbench.rehearse.appload import AppOperation, app_load, app_operations, canonical_operations
from chatbench.rehearse.applocks import measure_app_locks
from chatbench.rehearse.budgets import Budgets
from chatbench.rehearse.extrapolate import extrapolate, extrapolate_wal
from chatbench.rehearse.longtx import LONG_TX_NAME, long_transaction
from chatbench.rehearse.residue import read_catalog, residue
from chatbench.rehearse.result import AppLocks, LongTransaction, Rehearsal, SizeRun
from chatbench.rehearse.rules import judge
from chatbench.rehearse.runner import MigrationOutcome, SqlRunner, run_command
from chatbench.rehearse.sampler import INTERVAL_S, SAMPLER_NAME, LockSampler, Samples
from chatbench.rehearse.statements import Statement
from chatbench.schema.appqueries import AppQueries
from chatbench.schema.migrations import build_from_cmd, build_from_sql, database_env
from chatbench.schema.package import SchemaPackage, canonical
from chatbench.schema.rolemap import CANONICAL, ROLE_TABLES, RoleMap
from chatbench.settings import DriftMode
from chatbench.verify.appcheck import merged_result, verify_app_queries
from chatbench.verify.mapped import quoted
from chatbench.verify.result import VerificationResult
from chatbench.verify.schema_check import verify_schema

SMALLER_PROFILE = {"smoke": "smoke_fifth", "ci": "smoke", "release": "ci", "scale": "release"}
WARMUP_S = 0.3
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RehearsalPlan:
    """What to rehearse and how (every value already checked by the settings)."""

    migration: tuple[Statement, ...] | None  # the statements of --migration FILE.sql
    migration_source: str  # how reports name the migration
    migration_cmd: str | None
    before_file: Path | None
    before_cmd: str | None
    spec: Spec  # the profile's data
    small_spec: Spec  # the smaller size
    seed: int
    production_messages: int
    clients: int
    rate_per_s: float
    weights: Mapping[str, float]
    baseline_s: float
    budgets: Budgets
    timeout_s: float
    use_cache: bool = True
    verify: bool = True  # verify the migrated schema here (``chatbench.verify``)
    command: str = ""
    verified_by: str | None = None  # instead: who verifies it (a sign-off), named in the report
    package: SchemaPackage = field(default_factory=canonical)  # the schema the release must reach
    drift_mode: DriftMode = "contract"  # exact with the application's models (--models), else contract
    long_transaction_s: float = 0.0  # a session that read the app's tables, open across the migration's start
    lock_retries: int = 0  # tries after a statement (or a command) gave up on its lock_timeout
    queries: AppQueries | None = None  # the application's own queries (--queries): in the live load too
    roles: RoleMap = CANONICAL  # the application's names for the roles ([tool.chatbench.map])

    @property
    def before_source(self) -> str:
        if self.before_file is not None:
            return f"--from {self.before_file}"
        if self.before_cmd is not None:
            return f"--from-cmd {self.before_cmd!r}"
        return "the canonical schema (chatbench.schema)"


def smaller_spec(spec: Spec) -> Spec:
    """The second size: the next smaller profile; smoke for any other spec (one built in Python: the commands
    refuse a profile ``SMALLER_PROFILE`` does not name)."""
    if spec.name in SMALLER_PROFILE:
        return loadgen.load_spec(SMALLER_PROFILE[spec.name])
    return loadgen.load_spec("smoke")


@contextlib.contextmanager
def _template(server: Server, spec: Spec, plan: RehearsalPlan, progress: Progress) -> Iterator[tuple[Server,
                                                                                                      SeedResult]]:
    """A database holding the before-schema filled with ``spec``'s history: the template of a run.

    The canonical before-schema comes from the seed cache; a ``--from``/``--from-cmd`` schema is built
    and then seeded where it stands (``prebuilt``), whatever its tables and key types.
    """
    if plan.before_file is None and plan.before_cmd is None:
        with temporary_database(server, "cbr_seed") as db:
            progress(f"seeding {spec.name} ({spec.messages.count:,} messages)")
            # The before-schema is the previous release's, not the package the release must reach (its
            # new column or table would already be there): the canonical history.
            seeded = loadgen.seed(db, spec, seed=plan.seed, use_cache=plan.use_cache, progress=False,
                                  package=canonical())
            yield seeded.server_for(db), seeded
        return
    with temporary_database(server, "cbr_before") as before:
        progress(f"building the before-schema ({plan.before_source})")
        if plan.before_file is not None:
            build_from_sql(before, plan.before_file, option="--from")
        else:
            assert plan.before_cmd is not None
            build_from_cmd(before, plan.before_cmd, timeout=plan.timeout_s, option="--from-cmd")
        progress(f"seeding {spec.name} ({spec.messages.count:,} messages) into the before-schema")
        # Seeded where it was built (every table and key type of it), never from the cache: the database
        # is the run's template and must stay the one built here.
        seeded = loadgen.seed(before, spec, seed=plan.seed, use_cache=False, progress=False, prebuilt=True,
                              roles=plan.roles)
        yield before, seeded


@contextlib.contextmanager
def _sampling(conninfo: str) -> Iterator[LockSampler]:
    sampler = LockSampler(conninfo)
    try:
        sampler.start()
        yield sampler
    finally:
        sampler.stop()


def _terminate_migration(conninfo: str) -> None:
    """End every session of the rehearsal database that is not ours: a failed or hung migration's."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                     "AND application_name NOT LIKE %s AND application_name NOT IN (%s, %s)",
                     (APP_PREFIX + "%", SAMPLER_NAME, LONG_TX_NAME))


PRODUCTION_WAL = {"wal_level": "replica", "full_page_writes": "on"}


def rehearsal_server_settings(backend: str) -> dict[str, str] | None:
    """The settings a server the rehearsal runs on starts with (None: the benchmarks' own). A container's
    settings are its command line, fixed for its life, so ``production_wal`` cannot restart it with others:
    one that a migration will be rehearsed on starts with ``PRODUCTION_WAL`` (its seed then writes WAL too,
    a few seconds more). A local cluster is restarted around the migration instead; a DSN server is not
    chatbench's to change."""
    return {**BENCHMARK_SETTINGS, **PRODUCTION_WAL} if backend == "container" else None


@dataclass(frozen=True)
class WalSettings:
    """The server's WAL settings as the rehearsal ran (``PRODUCTION_WAL``'s names), and whether the rehearsal
    restarted a throwaway server to get them."""

    settings: Mapping[str, str]
    restarted: bool = False

    @property
    def like_production(self) -> bool:
        """WAL as a primary with replicas writes it: rewrites and index builds logged, full-page images on."""
        return self.settings.get("wal_level") not in ("minimal", "", None) and \
            self.settings.get("full_page_writes") == "on"

    def note(self) -> str:
        """What the WAL numbers are: as production writes them, or why not (for the report's notes)."""
        said = ", ".join(f"{k} = {v}" for k, v in self.settings.items())
        if self.like_production:
            restarted = (" (the throwaway server was restarted with them for the rehearsal and restored afterwards: "
                         "chatbench's benchmarks run with wal_level = minimal and full_page_writes = off)"
                         if self.restarted else "")
            return (f"WAL per statement as a production primary with replicas writes it: {said}{restarted}, and a "
                    "CHECKPOINT before each migration, so a table rewrite or an index build logs its new relation "
                    "and each page's first change logs the whole page, as after production's last checkpoint")
        why = []
        if self.settings.get("wal_level") == "minimal":
            why.append("a statement that builds a new relation (CREATE INDEX without CONCURRENTLY, a table rewrite) "
                       "writes almost no WAL here and its whole new relation on a production primary with replicas")
        if self.settings.get("full_page_writes") != "on":
            why.append("a changed page writes no full-page image here, so a backfill writes less WAL than on a "
                       "production primary")
        return (f"the server runs with {said}, which the rehearsal sets only on servers chatbench starts (a "
                "--dsn server's settings stay): " + "; ".join(why))


def wal_settings(server: Server) -> dict[str, str]:
    """The server's live WAL settings (``PRODUCTION_WAL``'s names)."""
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        return {name: str((conn.execute("SELECT current_setting(%s)", (name,)).fetchone() or ("",))[0])
                for name in PRODUCTION_WAL}


@contextlib.contextmanager
def production_wal(server: Server, progress: Progress) -> Iterator[WalSettings]:
    """Run the block on a server that writes WAL as production does; yields the WAL settings it runs with.

    With ``wal_level = minimal`` (chatbench's throwaway servers, for fast seeds and steady benchmarks) a
    statement that builds a new relation file (a table rewrite, ``CREATE INDEX`` without ``CONCURRENTLY``)
    skips the WAL: its WAL measures near zero where a primary with replicas writes the whole new relation
    (at 200k messages: 0 MB against 5.6 MB for an index, 3.5 MB against 264 MB for a rewrite). With
    ``full_page_writes = off`` a backfill writes no full-page images. So a local throwaway cluster is
    restarted with ``replica`` and ``on`` and restored when the block ends (a restart keeps every database;
    none is in use then). A container started for a rehearsal has them from its start
    (``rehearsal_server_settings``); a DSN server keeps its own, and the note says so.
    """
    live = WalSettings(wal_settings(server))
    cluster = server.cluster
    if cluster is None or live.like_production:
        yield live
        return
    saved = dict(cluster.settings)
    progress("restarting the throwaway server with " + ", ".join(f"{k} = {v}" for k, v in PRODUCTION_WAL.items())
             + " (WAL as a production primary writes it; restored afterwards)")
    cluster.settings.update(PRODUCTION_WAL)
    try:
        cluster.shutdown(fast=True)
        cluster.start()
        yield WalSettings(wal_settings(server), restarted=True)
    finally:
        cluster.settings.clear()
        cluster.settings.update(saved)
        cluster.shutdown(fast=True)
        cluster.start()


def _checkpoint(conn: psycopg.Connection) -> None:
    """A CHECKPOINT before the migration: every page's first change after it writes a full-page image, as a
    production table's pages, last written before its last checkpoint, do. Skipped where not allowed (a DSN
    server's role without pg_checkpoint)."""
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


def _migrate(run: Server, plan: RehearsalPlan, progress: Progress) -> MigrationOutcome:
    if plan.migration is not None:
        statements = plan.migration
        return SqlRunner(run.conninfo(), statements, timeout_s=plan.timeout_s, lock_retries=plan.lock_retries,
                         on_statement=lambda s: progress(f"statement {s.index}/{len(statements)}: {s.short(60)}"),
                         on_retry=lambda w, n, p: progress(f"{w} gave up on its lock_timeout (attempt {n}); "
                                                           f"again in {p:g} s")).run()
    assert plan.migration_cmd is not None
    progress(f"running {plan.migration_cmd!r}")
    return run_command(plan.migration_cmd, database_env(run), timeout_s=plan.timeout_s, conninfo=run.conninfo(),
                       lock_retries=plan.lock_retries,
                       on_retry=lambda n, p: progress(f"the command gave up on a lock_timeout (attempt {n}); "
                                                      f"again in {p:g} s"))


def app_tables(locks: AppLocks, names: Mapping[int, Relation]) -> tuple[str, ...]:
    """The tables the app's queries lock (reads and appends): what a long transaction of the app has read."""
    tables = {r.name for r in names.values() if r.is_table}
    return tuple(sorted({t for access in (locks.reads, locks.appends) for t in access if t in tables}))


def _ran(plan: RehearsalPlan, outcome: MigrationOutcome, samples: Samples) -> tuple[tuple[int | None, str], ...]:
    """(index, SQL) of what the migration ran: the file's statements it reached, or a command's as sampled
    (no index: the sampler may have missed some)."""
    if plan.migration is not None:
        return tuple((t.statement.index, t.statement.sql) for t in outcome.traces)
    return tuple((None, a.query) for a in sorted(samples.activity.values(), key=lambda a: a.start))


@dataclass(frozen=True)
class SizeOutcome:
    """One size rehearsed: what was measured, and the database the migration ran in (alive while its block is)."""

    size: SizeRun
    app_locks: AppLocks
    verification: VerificationResult | None
    database: Server  # the migrated database (dropped when the ``rehearse_size`` block ends)
    seed: SeedResult  # the history it was filled with, pointed at ``database``
    left_out: Mapping[str, str] = field(default_factory=dict)  # application query -> why not in the live load


@contextlib.contextmanager
def rehearse_size(server: Server, spec: Spec, plan: RehearsalPlan, progress: Progress, *,
                  app_locks: AppLocks | None, verify: bool) -> Iterator[SizeOutcome]:
    """One size: template, clone, load + sampler, migration, analysis (and verification when asked).

    The template (and the seeded sibling behind it) is dropped before the block's body runs: only the
    migrated database stays, until the block ends.
    """
    with contextlib.ExitStack() as kept:
        with _template(server, spec, plan, progress) as (template, seeded):
            run = kept.enter_context(temporary_database(server, "cbr_run", template=template.database))
            conninfo = run.conninfo()
            operations, left_out = _operations(conninfo, seeded, plan)
            for name, why in left_out.items():
                progress(f"{spec.name}: {name} is not in the live load: {why}")
            locks = app_locks if app_locks is not None else measure_app_locks(conninfo, operations)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                names = relations(conn)
                catalog = read_catalog(conn)
                wal_level = str((conn.execute("SELECT current_setting('wal_level')").fetchone() or ("",))[0])
                if (conn.execute("SELECT current_setting('full_page_writes')").fetchone() or ("",))[0] == "on":
                    _checkpoint(conn)
            tables = app_tables(locks, names)
            progress(f"{spec.name}: starting the live load")
            with app_load(conninfo, operations, clients=plan.clients, rate_per_s=plan.rate_per_s,
                          seed=plan.seed) as load, _sampling(conninfo) as sampler, \
                    long_transaction(conninfo, tables, plan.long_transaction_s) as held:
                time.sleep(WARMUP_S)
                before_start = time.monotonic()
                time.sleep(plan.baseline_s)
                checkpoint("rehearse.migrate")  # the crash tests stop here: live load, sampler and clone running
                if held is not None:
                    progress(f"{spec.name}: a transaction that read {', '.join(tables)} stays open "
                             f"{plan.long_transaction_s:g} s into the migration")
                    held.open()
                    held.end_after(time.monotonic())
                outcome = _migrate(run, plan, lambda m: progress(f"{spec.name}: {m}"))
                opened = held.stop() if held is not None else None
                if outcome.outcome != "completed":
                    _terminate_migration(conninfo)
                time.sleep(plan.baseline_s)
                after_end = time.monotonic()
                requests = load.stop()
                samples = sampler.stop()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            names = {**names, **relations(conn)}
            counts = {role: int(conn.execute(f"SELECT count(*) FROM {quoted(table)}").fetchone()[0])  # type: ignore[index]
                      for role in ROLE_TABLES for table in [plan.roles.table(role)]
                      if any(r.name == table for r in names.values())}
            left = residue(catalog, read_catalog(conn), plan.package, _ran(plan, outcome, samples))
        long_tx = None if opened is None else LongTransaction(opened.pid, opened.tables, opened.start - outcome.start,
                                                              opened.end - outcome.start)
        size = Analysis(outcome=outcome, samples=samples, requests=requests, names=names, app_locks=locks,
                        interval_s=INTERVAL_S).size_run(profile=spec.name, messages=spec.messages.count,
                                                        counts=counts, before_start=before_start, after_end=after_end,
                                                        long_transaction=long_tx, residue=left, wal_level=wal_level)
        migrated = replace(seeded, database=run.database)
        verification = None
        if verify and outcome.outcome == "completed":
            progress(f"{spec.name}: verifying the migrated schema ({plan.drift_mode} against {plan.package.name})")
            verification = verify_schema(run, migrated, package=plan.package, mode=plan.drift_mode,
                                         progress=lambda n: progress(f"verifying: {n}"), roles=plan.roles)
            if plan.queries is not None and len(plan.queries):  # the application's plans on the migrated schema
                judged = verify_app_queries(run, migrated.params, plan.queries, roles=plan.roles, prove=False,
                                            production_messages=plan.production_messages,
                                            progress=lambda n: progress(f"verifying: {n}"))
                verification = merged_result(verification, judged)
        yield SizeOutcome(size, locks, verification, run, migrated, left_out)


def _operations(conninfo: str, seeded: SeedResult, plan: RehearsalPlan) -> tuple[tuple[AppOperation, ...],
                                                                                   dict[str, str]]:
    """The live load: the canonical operations of the mix and the application's queries (``--queries``), each of
    those weighing an equal part of the mix's total (so the application's queries together run as often as the
    canonical ones); and why an application query is left out."""
    operations = canonical_operations(conninfo, seeded.params, plan.weights, plan.roles)
    own: tuple[AppOperation, ...] = ()
    left_out: dict[str, str] = {}
    if plan.queries is not None and len(plan.queries):
        total = sum(o.weight for o in operations) or 1.0
        own, left_out = app_operations(conninfo, seeded.params, plan.queries, weight=total / len(plan.queries),
                                       roles=plan.roles)
    if not operations and not own:
        raise ChatbenchError("rehearse: no query of the live load runs on this schema (every canonical one reads a "
                             "name the role map renames, and no --queries query runs); give --queries FILE.sql")
    return (*operations, *own), left_out


@dataclass(frozen=True)
class Rehearsed:
    """A rehearsal, and the database it migrated at the profile's size (None when the migration did not
    complete there), vacuumed and analyzed, with the seed it was filled from: alive while the
    ``rehearsed`` block is, for a caller that verifies and benchmarks the migrated schema itself."""

    rehearsal: Rehearsal
    migrated: Server | None
    seed: SeedResult | None


def rehearse(server: Server, plan: RehearsalPlan, progress: Progress = lambda _m: None) -> Rehearsal:
    """Rehearse the migration on ``server`` at two sizes under live load; judge and verify it."""
    with rehearsed(server, plan, progress) as done:
        return done.rehearsal


@contextlib.contextmanager
def rehearsed(server: Server, plan: RehearsalPlan, progress: Progress = lambda _m: None) -> Iterator[Rehearsed]:
    """``rehearse``, keeping the migrated database of the profile's size until the block ends.

    A sign-off with ``--migration`` runs its drift, health, plan contracts and benchmarks on that
    database: the schema the release ends with, reached the way production reaches it.
    """
    server.require_destructive("rehearse a migration")
    if plan.small_spec.messages.count >= plan.spec.messages.count:
        raise ChatbenchError(f"rehearse: the second size ({plan.small_spec.name}) must hold fewer messages than "
                             f"{plan.spec.name}; use a profile larger than smoke")
    sizes: list[SizeRun] = []
    app_locks: AppLocks | None = None
    last: SizeOutcome | None = None
    notes = []
    left_out: dict[str, str] = {}
    with contextlib.ExitStack() as kept:
        with production_wal(server, progress) as wal_live:
            for spec in (plan.small_spec, plan.spec):
                measuring = rehearse_size(server, spec, plan, progress, app_locks=app_locks,
                                          verify=plan.verify and spec is plan.spec)
                if spec is plan.spec:
                    last = kept.enter_context(measuring)
                    outcome = last
                else:
                    with measuring as outcome:
                        pass
                sizes.append(outcome.size)
                app_locks = outcome.app_locks
                left_out.update(outcome.left_out)
                if outcome.size.outcome != "completed":
                    skipped = "; the larger size was not run" if spec is not plan.spec else ""
                    notes.append(f"the migration {outcome.size.outcome} at {outcome.size.messages:,} messages{skipped}")
                    break
        assert app_locks is not None
        estimates = extrapolate(sizes[0], sizes[-1], plan.production_messages) if len(sizes) == 2 else ()
        wal_estimates = extrapolate_wal(sizes[0], sizes[-1], plan.production_messages, plan.budgets.wal) \
            if len(sizes) == 2 else ()
        notes.append(wal_live.note())
        notes += [f"the application's query {name} is not in the live load: {why}" for name, why in left_out.items()]
        if plan.migration is None:
            notes.append("a --migration-cmd's statements are known only from the lock sampler (every "
                         f"{INTERVAL_S * 1000:g} ms): a statement shorter than that may be missed; its lock_timeout "
                         "cannot be read from another session, so it is inferred from how long a statement waited "
                         "for its lock before it gave up, and its WAL is known for the whole migration only")
        if plan.long_transaction_s > 0:
            notes.append(f"a transaction that read the app's tables stayed open {plan.long_transaction_s:g} s into the "
                         "migration (--long-transaction), as production always has one; a statement that gave up on "
                         f"its lock_timeout was retried up to {plan.lock_retries} time(s) (--lock-retries); each app "
                         "client holds one connection, so at most --clients queries queue behind a waiting lock at "
                         "once, and the requests due meanwhile wait in their client (open loop) and show in its "
                         "latency, as they would in an application's connection pool")
        handed = last is not None and last.size.outcome == "completed" and plan.verified_by is not None
        if handed:
            assert last is not None
            progress(f"{plan.spec.name}: vacuuming and analyzing the migrated database")
            _settle(last.database)
            appended = last.size.counts.get("messages", 0) - int(last.seed.counts.get("messages", 0))
            notes.append(f"the database this migration produced at {last.size.messages:,} messages is handed on to "
                         f"{plan.verified_by}, vacuumed and analyzed as a seed is (autovacuum is off on throwaway "
                         f"servers); besides the seeded history it holds the {appended:,} messages the app appended "
                         "during the rehearsal")
        rehearsal = Rehearsal(
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            server={**server.describe(), "settings": {**server.settings, **wal_live.settings}},  # as it ran
            before=plan.before_source,
            migration=plan.migration_source,
            production_messages=plan.production_messages,
            budgets_source=plan.budgets.source,
            budgets=plan.budgets.as_mapping(),
            app_locks=app_locks,
            sizes=tuple(sizes),
            estimates=estimates,
            findings=judge(tuple(sizes), estimates, plan.budgets, wal_estimates),
            verification=last.verification if last is not None else None,
            notes=tuple(notes),
            command=plan.command,
            verified_by=plan.verified_by,
            wal_estimates=wal_estimates,
            wal_budget={"replica_apply_mb_s": plan.budgets.wal.replica_apply_mb_s,
                        "lag_allowed_s": plan.budgets.wal.lag_allowed_s},
        )
        yield Rehearsed(rehearsal, last.database if handed and last is not None else None,
                        last.seed if handed and last is not None else None)


def _settle(database: Server) -> None:
    """VACUUM and ANALYZE the migrated tables, as a seed is left: the state a production table reaches
    once autovacuum has run after the migration (a rewritten table has no visibility map, so count(*)
    would read the heap, and a changed column has no statistics)."""
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
