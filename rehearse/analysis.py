"""From what the runner, the sampler and the app clients saw to one ``SizeRun``.

Per statement: its locks (the runner's in-transaction snapshot, held from the statement's start
until its transaction ended, plus every lock the sampler saw the migration take while it ran, held
until the sampler last saw it), the strongest per relation, which of the app's accesses each blocks
(``locks.conflicts`` against the modes the app's own queries take), the tables it rewrote or read,
the app queries seen waiting behind it and the app's latency while it ran.

The queue: app queries first seen blocked while a statement of the migration was itself waiting for
its lock (behind the long transaction, ``longtx``) are the queue behind that waiting lock, per table
and access; a statement's waits and its tries (a statement that gave up on its ``lock_timeout`` and was
tried again) come with the session it waited for, as the sampler saw it. A command's ``lock_timeout``
cannot be read from its session by another one, so it is inferred from what the sampler saw: a
statement that waited about T seconds for its lock and then gave up had a lock_timeout of about T.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import psycopg

from chatbench.rehearse.appload import AppRequests
from chatbench.rehearse.locks import conflicts, strength
from chatbench.rehearse.result import (
    ACCESSES,
    Access,
    AppLocks,
    AppPoint,
    Attempt,
    Blocked,
    BlockedSpan,
    LockHold,
    LockSpan,
    LongTransaction,
    Queued,
    Residue,
    SizeRun,
    StatementRun,
)
from chatbench.rehearse.runner import MigrationOutcome, Trace
from chatbench.rehearse.sampler import Activity, Samples
from chatbench.rehearse.statements import kind_of

_RELATIONS = """
SELECT c.oid::int8, c.relname, coalesce(t.relname, c.relname), c.relkind::text
FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i', 'p', 'm')
"""


@dataclass(frozen=True)
class Relation:
    name: str
    table: str
    is_table: bool


def relations(conn: psycopg.Connection) -> dict[int, Relation]:
    """The application schema's tables and indexes by oid (read before and after the migration)."""
    return {int(oid): Relation(name, table, kind in ("r", "p")) for oid, name, table, kind in
            conn.execute(_RELATIONS).fetchall()}


def blocked_accesses(relation: str, mode: str, app: AppLocks) -> tuple[Access, ...]:
    return tuple(a for a in ACCESSES if any(conflicts(mode, m) for m in app.of(a).get(relation, ())))


def access_of_query(query: str) -> Access:
    head = query.lstrip().split(None, 1)[0].upper() if query.strip() else ""
    return "appends" if head in ("INSERT", "UPDATE", "DELETE", "MERGE") else "reads"


@dataclass
class _Hold:
    relation: str
    table: str
    mode: str
    start: float
    end: float
    waited: float


def _strongest(holds: Sequence[_Hold], start: float, app: AppLocks) -> tuple[LockHold, ...]:
    by_relation: dict[str, list[_Hold]] = {}
    for hold in holds:
        by_relation.setdefault(hold.relation, []).append(hold)
    out = []
    for relation, items in sorted(by_relation.items()):
        top = max(items, key=lambda h: (strength(h.mode), h.end))
        same = [h for h in items if h.mode == top.mode]
        end = max(h.end for h in same)
        out.append(LockHold(relation, top.table, top.mode, max(0.0, end - start), sum(h.waited for h in same),
                            blocked_accesses(relation, top.mode, app)))
    return tuple(out)


class Analysis:
    """Builds a ``SizeRun`` for one rehearsed size."""

    def __init__(self, *, outcome: MigrationOutcome, samples: Samples, requests: AppRequests,
                 names: Mapping[int, Relation], app_locks: AppLocks, interval_s: float) -> None:
        self.outcome = outcome
        self.samples = samples
        self.requests = requests
        self.names = names
        self.app = app_locks
        self.interval = interval_s
        self.t0 = outcome.start

    def spans(self, statement: tuple[int, str] | None = None) -> list[tuple[int, Relation, str, bool, float, float]]:
        """Sampled migration locks on the application's relations: (oid, relation, mode, granted, start, end);
        with ``statement`` (pid, query_start), only those its session took while running that statement."""
        out = []
        for (_owner, oid, mode, granted), spans in self.samples.locks.items():
            relation = self.names.get(oid)
            if relation is None:
                continue
            for span in spans:
                if statement is None or span.statement == statement:
                    out.append((oid, relation, mode, granted, span.first, span.last + self.interval))
        return sorted(out, key=lambda s: s[4])

    def _rewrites(self, oids: Sequence[int]) -> tuple[str, ...]:
        return tuple(sorted({self.names[o].name for o in oids if o in self.names and self.names[o].is_table}))

    def _statement(self, index: int, sql: str, line: int | None, kind: str, start: float, end: float,
                   release: float, holds: list[_Hold], rewrites: tuple[str, ...], scanned: tuple[str, ...],
                   lock_timeout: str | None, error: str | None, *, sampled: str = "all",
                   key: tuple[int, str] | None = None, until: float | None = None,
                   **extra: object) -> StatementRun:
        """``sampled``: which sampled locks belong to it. ``all`` (a command's statement ``key``: the locks its
        session took while the sampler saw it running that statement), ``alone`` (run outside a transaction: the
        locks first seen while it ran), ``waits`` (the runner's snapshot has its granted locks exactly; only
        the waits it was seen in come from the sampler)."""
        for _oid, relation, mode, granted, s_start, s_end in self.spans(key if sampled == "all" else None):
            if sampled == "waits" and granted:
                continue
            if sampled == "all" or start <= s_start <= min(end + self.interval, until or end + self.interval):
                holds.append(_Hold(relation.name, relation.table, mode, s_start, s_end,
                                   0.0 if granted else s_end - s_start))
        locks = _strongest(holds, start, self.app)
        run = StatementRun(index, sql, line, kind, start - self.t0, end - start, release - self.t0, locks,
                           rewrites, scanned, lock_timeout, {}, self.requests.window(start, max(end, start + 1e-9)),
                           error)
        return _replace(run, **extra) if extra else run

    def _waits(self, start: float, end: float, until: float | None = None) -> list[tuple[float, float]]:
        """The migration's waits for a lock that blocks the app, (start, end), first seen in [start, end]
        (and before ``until``, the next statement's start)."""
        last = min(end + self.interval, until or end + self.interval)
        return [(s_start, s_end) for _oid, relation, mode, granted, s_start, s_end in self.spans()
                if not granted and start - self.interval <= s_start <= last
                and blocked_accesses(relation.name, mode, self.app)]

    def _waited_for(self, pid: int | None, start: float, end: float) -> str | None:
        """Who the migration's session ``pid`` waited for in [start, end], as the sampler last saw them."""
        pids: list[int] = []
        for act in self.samples.activity.values():
            if (pid is None or act.pid == pid) and act.wait_first and start - self.interval <= act.wait_first <= \
                    end + self.interval:
                pids += [b for b in act.blockers if b not in pids]
        seen = [self.samples.blockers[b].describe() for b in pids if b in self.samples.blockers]
        return "; ".join(seen) if seen else (f"pid(s) {', '.join(map(str, pids))}" if pids else None)

    def statements(self) -> list[StatementRun]:
        if self.outcome.traces:
            return self._from_traces(self.outcome.traces)
        return self._from_activity(sorted(self.samples.activity.values(), key=lambda a: a.start))

    def _from_traces(self, traces: Sequence[Trace]) -> list[StatementRun]:
        out: list[StatementRun] = []
        held_in_block: set[tuple[int, str]] = set()
        # A statement's first try began before it (its own tries), or before the statements of its transaction
        # block that ran before it in the last try (a block's tries, each from the block's BEGIN): the window of a
        # statement ends where the next one's first try began, or where it began when that was before.
        starts = [t.tries[0].start if t.tries else t.start for t in traces]
        for number, trace in enumerate(traces):
            nxt = traces[number + 1] if number + 1 < len(traces) else None
            until = None if nxt is None else starts[number + 1] if starts[number + 1] >= trace.start else nxt.start
            st = trace.statement
            if st.transaction_control is not None:
                held_in_block = set()
                continue
            new = [lock for lock in trace.locks if lock not in held_in_block]
            held_in_block |= set(trace.locks)
            holds = [_Hold(self.names[oid].name, self.names[oid].table, mode, trace.start, trace.release, 0.0)
                     for oid, mode in new if oid in self.names]
            scanned = tuple(sorted({self.names[o].table for o, n in trace.read_rows.items() if o in self.names and n}))
            first = starts[number]
            end = trace.end or trace.start
            waits = self._waits(first, end, until)
            attempts = tuple(Attempt(t.number, t.start - self.t0, t.end - t.start, t.outcome,
                                     self._waited_for(self.outcome.pid, t.start, t.end), t.stopped_at)
                             for t in trace.tries)
            out.append(self._statement(st.index, st.short(400), st.line, st.kind, trace.start, end,
                                       trace.release or trace.end, holds, self._rewrites(trace.rewrites), scanned,
                                       trace.lock_timeout, trace.error,
                                       sampled="waits" if trace.reads_known else "alone", attempts=attempts,
                                       waited_s=max((e - b for b, e in waits), default=0.0),
                                       waited_for=self._waited_for(self.outcome.pid, first, end) if waits else None,
                                       lock_timeout_source="read from the migration's session",
                                       wal_bytes=trace.wal_bytes, until=until))
        return out

    def _from_activity(self, activity: Sequence[Activity]) -> list[StatementRun]:
        changed = [oid for oid, node in self.outcome.storage_before.items()
                   if self.outcome.storage_after.get(oid, node) != node]
        out: list[StatementRun] = []
        for act in activity:
            end = act.last_active + self.interval
            waited = (act.wait_last - act.wait_first + self.interval) if act.wait_first else 0.0
            gave_up = self._gave_up(act)
            timeout, source, error = None, "", None
            if gave_up:
                timeout = f"about {waited * 1000:.0f}ms"
                source = (f"inferred: the sampler saw it wait {waited:.2f} s for its lock and give up (a command's "
                          "session settings cannot be read from another session)")
                error = f"gave up waiting for its lock after {waited:.2f} s (lock_timeout, or cancelled)"
            elif waited:
                source = f"inferred: it waited {waited:.2f} s and then got its lock, so lock_timeout was 0 or longer"
            run = self._statement(len(out) + 1, " ".join(act.query.split())[:400], None, kind_of(act.query),
                                  act.start, end, end, [], (), (), timeout, error, key=(act.pid, act.query_start),
                                  waited_s=waited, lock_timeout_source=source,
                                  waited_for=self._waited_for(act.pid, act.start, end) if waited else None,
                                  attempts=(Attempt(1, act.start - self.t0, end - act.start, "lock timeout",
                                                    self._waited_for(act.pid, act.start, end)),) if gave_up else ())
            if not run.locks:
                continue
            release = max([run.start_s + h.held_s for h in run.locks] + [run.release_s])
            out.append(_replace(run, index=len(out) + 1, release_s=release))
        for table in self._rewrites(changed):  # a command's rewrite: the statement that held ACCESS EXCLUSIVE longest
            holders = [r for r in out if any(h.table == table and h.mode == "AccessExclusiveLock" for h in r.locks)]
            if holders:
                chosen = max(holders, key=lambda r: r.blocking_s(table, "reads"))
                out[out.index(chosen)] = _replace(chosen, rewrites=(*chosen.rewrites, table))
        scanned = sorted({self.names[o].table for o in self.outcome.scanned if o in self.names})
        for table in scanned:  # a command's scans: the statement that held the strongest lock there longest
            holders = [r for r in out if any(h.table == table for h in r.locks)]
            if holders:
                chosen = max(holders, key=lambda r: max((strength(h.mode), h.held_s) for h in r.locks
                                                        if h.table == table))
                out[out.index(chosen)] = _replace(chosen, scanned=(*chosen.scanned, table))
        return out

    def blocked(self, statements: list[StatementRun]) -> tuple[list[StatementRun], tuple[BlockedSpan, ...]]:
        """App queries seen waiting behind the migration, attributed to the statement holding the lock; those
        first seen while the migration itself waited for its lock are that statement's queue."""
        counts: dict[tuple[int, Access], list[float]] = {}
        operations: dict[tuple[int, Access], set[str]] = {}
        queues: dict[tuple[int, str, Access], list[float]] = {}
        waits = [(b - self.t0, e - self.t0) for b, e in self._waits(self.outcome.start, self.outcome.end)]
        spans = []
        for query in self.samples.blocked.values():
            operation = self.requests.operation_of(query.query)
            access = operation.access if operation is not None else access_of_query(query.query)
            relation = self.names.get(query.relation or -1)
            first = query.start - self.t0
            seen = query.first - self.t0
            owner = None
            for run in statements:
                holds = [h for h in run.locks
                         if relation is not None and h.relation == relation.name and access in h.blocks]
                last = run.start_s + max((h.held_s for h in holds), default=0.0) + self.interval
                if holds and _begin(run) - self.interval <= first <= last:
                    owner = run.index
            if owner is None:
                active = [r for r in statements if _begin(r) - self.interval <= first <= r.release_s + self.interval]
                owner = active[-1].index if active else None
            spans.append(BlockedSpan(first, query.last - self.t0, access,
                                     relation.name if relation else query.mode, owner,
                                     None if operation is None else operation.name))
            if owner is not None:
                counts.setdefault((owner, access), []).append(query.longest_s)
                if operation is not None:
                    operations.setdefault((owner, access), set()).add(operation.name)
                if relation is not None and any(b - self.interval <= seen <= e + self.interval for b, e in waits):
                    queues.setdefault((owner, relation.table, access), []).append(query.longest_s)
        updated = []
        for run in statements:
            blocked = {a: Blocked(len(counts.get((run.index, a), [])), max(counts.get((run.index, a), [0.0])),
                                  tuple(sorted(operations.get((run.index, a), ())))) for a in ACCESSES}
            queue = tuple(Queued(table, access, len(items), max(items))
                          for (index, table, access), items in sorted(queues.items()) if index == run.index)
            updated.append(_replace(run, blocked=blocked, queue=queue))
        return updated, tuple(sorted(spans, key=lambda s: s.start_s))

    def size_run(self, *, profile: str, messages: int, counts: Mapping[str, int], before_start: float,
                 after_end: float, long_transaction: LongTransaction | None = None,
                 residue: tuple[Residue, ...] = (), wal_level: str = "") -> SizeRun:
        statements, blocked = self.blocked(self.statements())
        lock_spans = tuple(LockSpan(r.name, r.table, mode, granted, start - self.t0, end - self.t0,
                                    blocked_accesses(r.name, mode, self.app))
                           for _oid, r, mode, granted, start, end in self.spans())
        points = tuple(AppPoint(q.intended - self.t0, q.latency_ms, q.access, q.ok) for q in self.requests.requests
                       if before_start <= q.intended <= after_end)
        phases = {
            "before": self.requests.window(before_start, self.outcome.start),
            "during": self.requests.window(self.outcome.start, self.outcome.end),
            "after": self.requests.window(self.outcome.end, after_end),
        }
        failure = self.outcome.failure
        if self.outcome.outcome == "timed out":
            failure = f"{failure}; {self.hung()}"
        elif self.outcome.gave_up:
            last = next((r for r in reversed(statements) if r.error), None)
            tries = last.attempts if last is not None else ()
            whom = next((a.waited_for for a in reversed(tries) if a.waited_for), None) or \
                self._waited_for(None, self.outcome.start, self.outcome.end)
            failure = f"{failure}; it waited for {whom or 'a session the sampler did not see'}"
        return SizeRun(profile, messages, dict(counts), self.outcome.outcome,  # type: ignore[arg-type]
                       failure, self.outcome.end - self.outcome.start, tuple(statements), phases, lock_spans, points,
                       blocked, self.samples.count, self.samples.mean_interval_ms, self.requests.description,
                       self.requests.errors, self.sampler_error(), long_transaction, residue, wal_level,
                       self.outcome.wal_bytes, self.command_tries())

    def _gave_up(self, act: Activity) -> bool:
        """A command's statement that waited for a lock and gave up: never seen holding it afterwards, and the
        command's run it belongs to failed on a lock timeout (a statement that got its lock and committed
        within one sampling interval is seen holding nothing either)."""
        if not act.wait_first or act.granted_after_wait:
            return False
        if act.wait_lock is not None:
            relation, mode = act.wait_lock
            if any(span.last >= act.wait_last for span in self.samples.locks.get((act.pid, relation, mode, True), ())):
                return False
        return any(t.outcome == "lock timeout" and t.start <= act.start <= t.end for t in self.outcome.tries)

    def command_tries(self) -> tuple[Attempt, ...]:
        """A command's runs, each with whom it waited for when it gave up on a lock timeout (none when it ran
        once and did not give up)."""
        tries = self.outcome.tries
        if len(tries) < 2 and not any(t.outcome == "lock timeout" for t in tries):
            return ()
        return tuple(Attempt(t.number, t.start - self.t0, t.end - t.start, t.outcome,
                             self._waited_for(None, t.start, t.end) if t.outcome == "lock timeout" else None)
                     for t in self.outcome.tries)

    def sampler_error(self) -> str | None:
        """Why the lock sampler stopped before the migration ended, with what it still saw; None when it
        sampled to the end (a failure after the migration's end lost no lock of it)."""
        s = self.samples
        if s.error is None or (s.count and s.last >= self.outcome.end):
            return None
        seen = (f"its last sample {s.last - self.t0:.3f} s into the migration, which ran "
                f"{self.outcome.end - self.t0:.3f} s" if s.count else "it took no sample")
        return f"the lock sampler stopped before the migration ended ({seen}): {s.error}"

    def hung(self) -> str:
        """What the migration was doing when it was stopped: the evidence for a hang."""
        if not self.samples.activity:
            return "the sampler saw no statement of the migration"
        last = max(self.samples.activity.values(), key=lambda a: a.last_active - a.start)  # the long one
        text = f"it was running: {' '.join(last.query.split())[:200]}"
        if last.waiting_for:
            what = last.waiting_for
            for oid, relation in self.names.items():
                what = what.replace(f"relation {oid}", relation.name)
            text += f", waiting for {what}" + (f" held by backend(s) {', '.join(map(str, last.blockers))}"
                                               if last.blockers else "")
        return text


def _begin(run: StatementRun) -> float:
    """When a statement's first try began (its ``start_s`` is its last try's)."""
    return min([run.start_s, *(a.start_s for a in run.attempts)])


def _replace(run: StatementRun, **changes: object) -> StatementRun:
    return replace(run, **changes)  # type: ignore[arg-type]
