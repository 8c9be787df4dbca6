"""From what the runner, the sampler and the app clients saw to one ``SizeRun``.

Per statement: its locks (the runner's in-transaction snapshot, held from the statement's start
until its transaction ended, plus every lock the sampler saw the migration take while it ran, held
until the sampler last saw it), the strongest per relation, which of the app's accesses each blocks
(``locks.conflicts`` against the modes the app's own queries take), the tables it rewrote or read,
the app queries seen waiting behind it and the app's latency while it ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
from chatbench.rehearse.appload import AppRequests
from chatbench.rehearse.locks import conflicts, strength
from chatbench.rehearse.result import (
    ACCESSES,
    Access,
    AppLocks,
    AppPoint,
    Blocked,
    BlockedSpan,
    LockHold,
    LockSpan,
    SizeRun,
    StatementRun,
)
from chatbench.rehearse.runner import MigrationOutcome, Trace
from chatbench.rehearse.sampler import Activity, Samples

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
                   key: tuple[int, str] | None = None) -> StatementRun:
        """``sampled``: which sampled locks belong to it. ``all`` (a command's statement ``key``: the locks its
        session took while the sampler saw it running that statement), ``alone`` (run outside a transaction: the
        locks first seen while it ran), ``waits`` (the runner's snapshot has its granted locks exactly; only
        the waits it was seen in come from the sampler)."""
        for _oid, relation, mode, granted, s_start, s_end in self.spans(key if sampled == "all" else None):
            if sampled == "waits" and granted:
                continue
            if sampled == "all" or start <= s_start <= end + self.interval:
                holds.append(_Hold(relation.name, relation.table, mode, s_start, s_end,
                                   0.0 if granted else s_end - s_start))
        locks = _strongest(holds, start, self.app)
        return StatementRun(index, sql, line, kind, start - self.t0, end - start, release - self.t0, locks,
                            rewrites, scanned, lock_timeout, {}, self.requests.window(start, max(end, start + 1e-9)),
                            error)

    def statements(self) -> list[StatementRun]:
        if self.outcome.traces:
            return self._from_traces(self.outcome.traces)
        return self._from_activity(sorted(self.samples.activity.values(), key=lambda a: a.start))

    def _from_traces(self, traces: Sequence[Trace]) -> list[StatementRun]:
        out: list[StatementRun] = []
        held_in_block: set[tuple[int, str]] = set()
        for trace in traces:
            st = trace.statement
            if st.transaction_control is not None:
                held_in_block = set()
                continue
            new = [lock for lock in trace.locks if lock not in held_in_block]
            held_in_block |= set(trace.locks)
            holds = [_Hold(self.names[oid].name, self.names[oid].table, mode, trace.start, trace.release, 0.0)
                     for oid, mode in new if oid in self.names]
            scanned = tuple(sorted({self.names[o].table for o, n in trace.read_rows.items() if o in self.names and n}))
            out.append(self._statement(st.index, st.short(400), st.line, st.kind, trace.start, trace.end or trace.start,
                                       trace.release or trace.end, holds, self._rewrites(trace.rewrites), scanned,
                                       trace.lock_timeout, trace.error,
                                       sampled="waits" if trace.reads_known else "alone"))
        return out

    def _from_activity(self, activity: Sequence[Activity]) -> list[StatementRun]:
        from chatbench.rehearse.statements import kind_of

        changed = [oid for oid, node in self.outcome.storage_before.items()
                   if self.outcome.storage_after.get(oid, node) != node]
        out: list[StatementRun] = []
        for act in activity:
            end = act.last_active + self.interval
            run = self._statement(len(out) + 1, " ".join(act.query.split())[:400], None, kind_of(act.query),
                                  act.start, end, end, [], (), (), None, None, key=(act.pid, act.query_start))
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
        """App queries seen waiting behind the migration, attributed to the statement holding the lock."""
        counts: dict[tuple[int, Access], list[float]] = {}
        spans = []
        for query in self.samples.blocked.values():
            access = access_of_query(query.query)
            relation = self.names.get(query.relation or -1)
            first = query.start - self.t0
            owner = None
            for run in statements:
                holds = [h for h in run.locks
                         if relation is not None and h.relation == relation.name and access in h.blocks]
                last = run.start_s + max((h.held_s for h in holds), default=0.0) + self.interval
                if holds and run.start_s - self.interval <= first <= last:
                    owner = run.index
            if owner is None:
                active = [r for r in statements if r.start_s - self.interval <= first <= r.release_s + self.interval]
                owner = active[-1].index if active else None
            spans.append(BlockedSpan(first, query.last - self.t0, access,
                                     relation.name if relation else query.mode, owner))
            if owner is not None:
                counts.setdefault((owner, access), []).append(query.longest_s)
        updated = []
        for run in statements:
            blocked = {a: Blocked(len(counts.get((run.index, a), [])), max(counts.get((run.index, a), [0.0])))
                       for a in ACCESSES}
            updated.append(_replace(run, blocked=blocked))
        return updated, tuple(sorted(spans, key=lambda s: s.start_s))

    def size_run(self, *, profile: str, messages: int, counts: Mapping[str, int], before_start: float,
                 after_end: float) -> SizeRun:
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
        return SizeRun(profile, messages, dict(counts), self.outcome.outcome,  # type: ignore[arg-type]
                       failure, self.outcome.end - self.outcome.start, tuple(statements), phases, lock_spans, points,
                       blocked, self.samples.count, self.samples.mean_interval_ms, self.requests.description,
                       self.requests.errors, self.sampler_error())

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


def _replace(run: StatementRun, **changes: object) -> StatementRun:
    from dataclasses import replace

    return replace(run, **changes)  # type: ignore[arg-type]
