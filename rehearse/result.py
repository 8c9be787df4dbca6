"""The frozen result of a migration rehearsal, handed to the reports (and to a sign-off pipeline).

``Rehearsal`` holds both measured sizes (``SizeRun``: per statement what the migration locked, for
how long, what it rewrote and scanned, which app queries it blocked and how the app's latency
moved), the linear extrapolation of each blocking time to the production size (``Estimate``), the
verdict rules' findings (``RuleFinding``, each with its evidence and a safe rewrite) and the
verification of the schema the migration produced. ``to_plain`` (through ``_document``) is its only serialiser.

Times on a run's timeline are seconds relative to the migration's start (the baseline before it is
negative). Format history (``FORMAT_VERSION``):

- 1 (2026-11-29): first version.
- 2 (2026-11-29): ``verified_by``: null, or who verified the migrated schema instead of the rehearsal
  (a sign-off with ``--migration`` verifies it in its own drift, health and plans stages; its
  ``verification`` is then null); the headline says so.
- 4 (2026-12-06): the long transaction and the lock queue: per statement ``attempts`` (each try of a
  statement that gave up on its ``lock_timeout``, and whom it waited for), ``queue`` (app queries
  blocked behind its waiting lock, per table), ``waited_s``, ``lock_timeout_source`` and ``wal_bytes``;
  per size ``long_transaction``, ``residue``, ``wal_level`` and ``migration_wal_bytes``; ``wal_estimates``
  and ``wal_budget``; a blocking time no longer counts the statement's wait for its lock (the queue
  does, judged by the ``lock_timeout`` rule).
- 5 (2026-12-07): ``attempts[].block_stopped_at``: a statement in the file's own ``BEGIN`` ... ``COMMIT``
  block that gave up on its ``lock_timeout`` is retried with its whole block, from its ``BEGIN``; each try
  of the block names the statement it stopped at. ``server.settings`` holds ``wal_level`` and
  ``full_page_writes`` as the rehearsal ran with them (a throwaway server is restarted with ``replica`` and
  ``on`` for it, so WAL is measured as a production primary writes it).
- 6 (2026-12-08): ``blocked[].operations`` per statement and access, and ``operation`` per blocked span: the
  live load's operations seen blocked, the application's own (``--queries``, ``app:QUERY``) among them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chatbench import convert
from chatbench.convert import to_plain
from chatbench.verify.result import VerificationResult  # at run time: the converter reads the annotations

FORMAT_VERSION = 6
Access = Literal["reads", "appends"]
ACCESSES: tuple[Access, ...] = ("reads", "appends")
Verdict = Literal["PASS", "WARN", "FAIL", "ERROR"]
TryOutcome = Literal["completed", "lock timeout", "failed"]


@dataclass(frozen=True)
class LockHold:
    """The strongest lock one statement held on one relation, and how long the app could not pass it."""

    relation: str
    table: str  # the table the relation belongs to (itself, or an index's table)
    mode: str  # e.g. ShareLock
    held_s: float  # from the statement's start (queueing included) until the lock was released
    waited_s: float  # part of ``held_s`` spent waiting to be granted (the app queues behind a waiter too)
    blocks: tuple[Access, ...]  # which of the app's accesses conflict with it


@dataclass(frozen=True)
class Blocked:
    """App queries a statement blocked (seen waiting on a lock the migration held), per access."""

    count: int = 0
    longest_s: float = 0.0
    operations: tuple[str, ...] = ()  # the load's operations seen blocked (``app:QUERY``: the application's own)


@dataclass(frozen=True)
class Latency:
    """The app's requests in one window: count, errors and latency from the intended start (open loop)."""

    requests: int = 0
    errors: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    unserved: int = 0  # due in the window, never sent before the load stopped (their latency: a lower bound)


@dataclass(frozen=True)
class AppWindow:
    reads: Latency = field(default_factory=Latency)
    appends: Latency = field(default_factory=Latency)

    def of(self, access: Access) -> Latency:
        return self.reads if access == "reads" else self.appends

    @property
    def requests(self) -> int:
        return self.reads.requests + self.appends.requests

    @property
    def unserved(self) -> int:
        return self.reads.unserved + self.appends.unserved

    @property
    def errors(self) -> int:
        return self.reads.errors + self.appends.errors


@dataclass(frozen=True)
class Attempt:
    """One try of a statement: a statement that gave up on its ``lock_timeout`` is tried again after a backoff."""

    number: int  # 1-based
    start_s: float  # relative to the migration's start
    duration_s: float
    outcome: TryOutcome
    waited_for: str | None = None  # the session it waited for (pid, application, state, age, query), when seen
    # a try of the file's BEGIN ... COMMIT block (retried whole, from its BEGIN): the statement it gave up (or
    # failed) at, None when it completed; None too for a statement's own tries and a command's runs
    block_stopped_at: int | None = None


@dataclass(frozen=True)
class Queued:
    """App queries of one access to one table blocked behind a statement's waiting (not yet granted) lock."""

    table: str
    access: Access
    count: int
    longest_s: float


@dataclass(frozen=True)
class StatementRun:
    """One statement of the migration at one data size."""

    index: int
    sql: str
    line: int | None  # in the migration file (None for a command's statements)
    kind: str  # parse node (IndexStmt, AlterTableStmt...) or "" when unknown
    start_s: float
    duration_s: float  # execution time of the statement
    release_s: float  # when its locks were released (its transaction's end), relative to the start
    locks: tuple[LockHold, ...]  # strongest per relation
    rewrites: tuple[str, ...]  # tables whose storage was rewritten (relfilenode changed)
    scanned: tuple[str, ...]  # tables the statement read rows of (pg_stat_xact_user_tables)
    lock_timeout: str | None  # the session's lock_timeout when it ran ("0" = none), None when unobservable
    blocked: Mapping[str, Blocked]  # access -> app queries it blocked
    app: AppWindow  # the app's latency while it ran
    error: str | None = None
    attempts: tuple[Attempt, ...] = ()  # every try, when it was tried more than once or gave up
    queue: tuple[Queued, ...] = ()  # app queries blocked behind its waiting lock, per table and access
    waited_s: float = 0.0  # longest time one attempt waited for a lock that blocks the app
    waited_for: str | None = None  # the session(s) it waited for, as the sampler saw them
    lock_timeout_source: str = ""  # where ``lock_timeout`` was read: the session, or inferred from a wait
    wal_bytes: int | None = None  # WAL written while it ran (LSN difference; None: not observable)

    def blocking_s(self, table: str, access: Access) -> float:
        """How long this statement kept ``access`` out of ``table`` once it held the lock (0 when it took no
        conflicting lock); its wait for the lock is the queue's (``queue``), judged by ``lock_timeout``."""
        return max((max(0.0, h.held_s - h.waited_s) for h in self.locks if h.table == table and access in h.blocks),
                   default=0.0)

    def blocking_lock(self, table: str, access: Access) -> LockHold | None:
        holds = [h for h in self.locks if h.table == table and access in h.blocks]
        return max(holds, key=lambda h: h.held_s - h.waited_s) if holds else None

    def queued(self, table: str, access: Access) -> Queued | None:
        return next((q for q in self.queue if q.table == table and q.access == access), None)

    def strong(self) -> bool:
        """Took a lock that conflicts with the app's reads or appends."""
        return any(h.blocks for h in self.locks)

    def tables_blocked(self) -> tuple[str, ...]:
        return tuple(sorted({h.table for h in self.locks if h.blocks}))


@dataclass(frozen=True)
class LockSpan:
    """A lock the migration held (or waited for) on the timeline."""

    relation: str
    table: str
    mode: str
    granted: bool
    start_s: float
    end_s: float
    blocks: tuple[Access, ...]


@dataclass(frozen=True)
class AppPoint:
    """One app request on the timeline: when it was due, its latency, what it was, whether it failed."""

    t_s: float
    latency_ms: float
    access: Access
    ok: bool


@dataclass(frozen=True)
class BlockedSpan:
    """One app query seen waiting behind the migration."""

    start_s: float
    end_s: float
    access: Access
    relation: str
    statement: int | None
    operation: str | None = None  # the load's operation it was (None: a text no operation has)


@dataclass(frozen=True)
class LongTransaction:
    """The session that read the app's tables and stayed open across the migration's start."""

    pid: int
    tables: tuple[str, ...]  # the tables it read (ACCESS SHARE held until it ended)
    start_s: float  # when it began, relative to the migration's start (negative: before)
    end_s: float  # when it committed

    def describe(self) -> str:
        return (f"the long transaction (pid {self.pid}, read {', '.join(self.tables)}, open from {self.start_s:.2f} s "
                f"to {self.end_s:.2f} s)")


@dataclass(frozen=True)
class Residue:
    """Something the migration left behind that costs production: an invalid index, a NOT VALID constraint the
    release expects valid, a sequence no column owns."""

    kind: Literal["invalid index", "not valid constraint", "orphan sequence"]
    name: str
    table: str | None
    detail: str
    statement: int | None  # the statement that left it, when known
    sql: str
    fix: str


@dataclass(frozen=True)
class SizeRun:
    """The migration rehearsed once on one seeded size under live load."""

    profile: str
    messages: int
    counts: Mapping[str, int]
    outcome: Literal["completed", "failed", "timed out"]
    failure: str | None  # the failing statement and its error, or what a hung migration waited for
    migration_s: float
    statements: tuple[StatementRun, ...]
    phases: Mapping[str, AppWindow]  # before | during | after
    locks: tuple[LockSpan, ...]
    app: tuple[AppPoint, ...]
    blocked: tuple[BlockedSpan, ...]
    samples: int  # lock samples taken while the migration ran
    sample_interval_ms: float  # their mean spacing
    load: str  # how the app load ran (clients, rate, mix)
    app_errors: tuple[str, ...] = ()  # the first errors the app's requests raised (samples, not all)
    sampler_error: str | None = None  # why the lock sampler stopped before the migration ended
    long_transaction: LongTransaction | None = None
    residue: tuple[Residue, ...] = ()
    wal_level: str = ""  # the server's: with ``minimal``, a new index or a rewritten table writes no WAL
    migration_wal_bytes: int | None = None  # WAL written from the migration's start to its end (all sessions)
    command_tries: tuple[Attempt, ...] = ()  # a command's runs, when it was run again after a lock timeout


@dataclass(frozen=True)
class Estimate:
    """One statement's blocking of one access to one table at both sizes, extrapolated linearly."""

    statement: int
    table: str
    access: Access
    mode: str
    small_messages: int
    small_s: float
    large_messages: int
    large_s: float
    production_messages: int
    scales: bool  # grows with the table (rewrite, scan, or measured growth); else constant
    basis: str  # why it does or does not scale
    extrapolated_s: float


@dataclass(frozen=True)
class WalEstimate:
    """One statement's WAL at both sizes, extrapolated like blocking time, and the replica lag it means."""

    statement: int | None  # None: a command's whole migration
    small_messages: int
    small_bytes: int
    large_messages: int
    large_bytes: int
    production_messages: int
    scales: bool
    basis: str
    extrapolated_bytes: float
    lag_s: float  # extrapolated_bytes / the replica's apply rate


@dataclass(frozen=True)
class RuleFinding:
    """A verdict rule that fired: its evidence and the safe way to write the statement."""

    rule: str  # blocking | lock_timeout | lock_retries | wal | residue | failed | timed_out | sampler | app_errors
    # | load_saturated
    severity: Literal["FAIL", "WARN", "ERROR"]  # ERROR: the evidence is incomplete, the rule could not judge
    statement: int | None
    sql: str
    table: str | None
    lock: str | None
    measured_s: float | None
    extrapolated_s: float | None
    budget_s: float | None
    evidence: str
    rewrite: str

    def line(self) -> str:
        """One line for a terminal, a CI log or a PR comment."""
        return f"{self.severity} {self.describe()}"

    def describe(self) -> str:
        """The line without its severity (for reports that show the severity apart)."""
        where = f"statement {self.statement}" if self.statement is not None else "migration"
        return f"{self.rule}: {where}: {self.evidence}; fix: {self.rewrite}"


@dataclass(frozen=True)
class AppLocks:
    """The lock modes the app's own reads and appends take, per relation (measured on the before-schema)."""

    reads: Mapping[str, tuple[str, ...]]
    appends: Mapping[str, tuple[str, ...]]

    def of(self, access: Access) -> Mapping[str, tuple[str, ...]]:
        return self.reads if access == "reads" else self.appends


@dataclass(frozen=True)
class Rehearsal:
    """Everything one rehearsal found; ``verdict`` decides, ``findings`` say why."""

    created_at: str
    server: Mapping[str, Any]
    before: str  # where the before-schema came from
    migration: str  # the migration (file or command)
    production_messages: int
    budgets_source: str
    budgets: Mapping[str, Mapping[str, float]]  # table -> access -> seconds
    app_locks: AppLocks
    sizes: tuple[SizeRun, ...]  # smaller first
    estimates: tuple[Estimate, ...]
    findings: tuple[RuleFinding, ...]
    verification: VerificationResult | None
    notes: tuple[str, ...] = ()
    command: str = ""
    verified_by: str | None = None  # who verified the migrated schema when the rehearsal did not (a sign-off)
    wal_estimates: tuple[WalEstimate, ...] = ()
    wal_budget: Mapping[str, float] = field(default_factory=dict)  # replica_apply_mb_s, lag_allowed_s

    @property
    def verdict(self) -> Verdict:
        if any(f.severity == "FAIL" for f in self.findings):
            return "FAIL"
        if self.verification is not None and not self.verification.passed:
            return "FAIL"
        if any(f.severity == "ERROR" for f in self.findings):
            return "ERROR"
        if any(f.severity == "WARN" for f in self.findings):
            return "WARN"
        return "PASS"

    @property
    def exit_code(self) -> int:
        return {"FAIL": 1, "ERROR": 2}.get(self.verdict, 0)

    @property
    def measured(self) -> SizeRun:
        """The run at the profile's size (the larger one): what the timeline shows."""
        return self.sizes[-1]

    def failing_lines(self) -> tuple[str, ...]:
        lines = [f.line() for f in self.findings if f.severity in ("FAIL", "ERROR")]
        if self.verification is not None:
            lines += [f"FAIL verification: {f.message()}" for f in self.verification.errors]
        return tuple(lines)

    def headline(self) -> str:
        fails = sum(f.severity == "FAIL" for f in self.findings)
        warns = sum(f.severity == "WARN" for f in self.findings)
        errors = sum(f.severity == "ERROR" for f in self.findings)
        statements = len(self.measured.statements)
        verification = (
            f"verification by {self.verified_by}" if self.verification is None and self.verified_by
            else "verification not run" if self.verification is None
            else "verification passed" if self.verification.passed
            else f"verification failed ({len(self.verification.errors)} errors)"
        )
        return (f"{self.verdict}: {statements} statement(s) rehearsed at {self.measured.messages:,} messages, "
                f"{fails} failing, {warns} warning(s), "
                + (f"{errors} size(s) with incomplete lock evidence, " if errors else "") + verification)


_EVIDENCE = ("created_at", "command", "server", "before", "migration", "production_messages", "budgets_source",
             "budgets", "app_locks", "sizes", "estimates", "wal_estimates", "wal_budget", "findings")


def _document(rehearsal: Rehearsal) -> dict[str, Any]:
    """A rendering, not a round trip (nothing reads one back): the kind, version, verdict, headline and failing
    lines lead, computed for readers that do not recompute them; then the evidence by the converter, and the
    verification in its own versioned layout (``VerificationResult.to_json``)."""
    return {
        "kind": "chatbench-rehearsal",
        "format_version": FORMAT_VERSION,
        "verdict": rehearsal.verdict,
        "headline": rehearsal.headline(),
        "failing": list(rehearsal.failing_lines()),
        **{name: to_plain(getattr(rehearsal, name)) for name in _EVIDENCE},
        "verification": None if rehearsal.verification is None else rehearsal.verification.to_json(),
        "verified_by": rehearsal.verified_by,
        "notes": list(rehearsal.notes),
    }


convert.register(Rehearsal, write=_document)
