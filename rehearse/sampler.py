"""The lock sampler: every few milliseconds, every lock the migration's backends hold or wait for,
and every app query that waits behind them (``pg_locks`` joined to ``pg_stat_activity``, with
``pg_blocking_pids`` for the waiters).

Which backend is which: the app clients, the sampler and the long transaction (``longtx``) name
themselves (``application_name``); every other client backend in the rehearsal database is the
migration (the SQL runner's session, or whatever sessions a migration command opens), and a
parallel worker belongs to its leader. A sampled lock becomes a span (first to last sample that saw
it); a lock held for less than one sampling interval may be missed: the SQL runner's in-transaction
snapshots cover those.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg

from chatbench.rehearse.appclient import APP_PREFIX
from chatbench.rehearse.longtx import LONG_TX_NAME

SAMPLER_NAME = "chatbench-rehearse-sampler"
INTERVAL_S = 0.005

_SAMPLE = """
SELECT a.pid, coalesce(a.leader_pid, a.pid), a.application_name, a.backend_type, a.state, a.wait_event_type,
       extract(epoch FROM clock_timestamp() - a.query_start)::float8, a.query_start::text, left(a.query, 400),
       l.locktype, l.relation::int8, l.mode, l.granted,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8
FROM pg_stat_activity a
LEFT JOIN pg_locks l ON l.pid = a.pid AND (l.locktype = 'relation' OR NOT l.granted)
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
"""


@dataclass
class Span:
    first: float
    last: float
    sample: int  # number of the last sample that saw it
    statement: tuple[int, str] | None = None  # the (pid, query_start) its session was running when first seen


@dataclass
class Activity:
    """One statement of a migration backend as sampled: (pid, query_start)."""

    pid: int
    query_start: str
    query: str
    start: float  # on the monotonic clock (sample time minus the statement's age)
    last_active: float
    waiting_for: str = ""  # the lock it was last seen waiting for
    blockers: tuple[int, ...] = ()
    wait_lock: tuple[int, str] | None = None  # (relation, mode) it waited for last
    wait_first: float = 0.0  # first and last sample that saw it waiting for a lock (0: never)
    wait_last: float = 0.0
    granted_after_wait: bool = False  # seen running (not waiting) after it had waited: it got the lock


@dataclass
class Session:
    """A session that made the migration wait, as last seen: who it is and what it was doing."""

    pid: int
    application_name: str
    state: str
    transaction_age_s: float
    query: str

    def describe(self) -> str:
        name = f" ({self.application_name})" if self.application_name else ""
        return (f"pid {self.pid}{name}, {self.state or 'unknown state'}, its transaction open "
                f"{self.transaction_age_s:.1f} s, last query: {' '.join(self.query.split())[:120]}")


@dataclass
class BlockedQuery:
    """One app query seen waiting behind a migration backend."""

    pid: int
    query: str
    first: float
    last: float
    longest_s: float  # its age when last seen waiting
    relation: int | None
    mode: str
    start: float


@dataclass
class Samples:
    """What the sampler saw (read after it stopped)."""

    locks: dict[tuple[int, int, str, bool], list[Span]] = field(default_factory=dict)
    activity: dict[tuple[int, str], Activity] = field(default_factory=dict)
    blocked: dict[tuple[int, str], BlockedQuery] = field(default_factory=dict)
    blockers: dict[int, Session] = field(default_factory=dict)  # sessions the migration waited for
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    error: str | None = None

    @property
    def mean_interval_ms(self) -> float:
        return (self.last - self.first) / (self.count - 1) * 1000 if self.count > 1 else float("nan")


class LockSampler:
    """A thread sampling one database until ``stop()``; the samples are read after it stopped."""

    def __init__(self, conninfo: str, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.samples = Samples()
        self._conn = psycopg.connect(conninfo, autocommit=True, application_name=SAMPLER_NAME)
        self._conn.execute("SET statement_timeout = '5s'")
        self._stopping = threading.Event()
        self._running: dict[int, tuple[int, str]] = {}
        self._thread = threading.Thread(target=self._run, name=SAMPLER_NAME, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Samples:
        self._stopping.set()
        self._thread.join(timeout=10.0)
        self._conn.close()
        return self.samples

    def _run(self) -> None:
        cursor = self._conn.cursor()
        try:
            while not self._stopping.is_set():
                sent = time.monotonic()
                rows = cursor.execute(_SAMPLE, prepare=True).fetchall()
                now = time.monotonic()
                self._take((sent + now) / 2, rows)
                pause = self.interval_s - (time.monotonic() - sent)
                if pause > 0:
                    self._stopping.wait(pause)
        except psycopg.Error as exc:  # the database went away (teardown, a failed server): keep what we saw
            if not self._stopping.is_set():
                self.samples.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"

    def _take(self, t: float, rows: list[tuple]) -> None:
        s = self.samples
        s.count += 1
        s.first = s.first or t
        s.last = t
        names: dict[int, str] = {}
        for pid, _leader, app_name, backend_type, *_ in rows:
            if backend_type == "client backend":
                names[pid] = app_name or ""
        migration = {pid for pid, name in names.items()
                     if not name.startswith((APP_PREFIX, SAMPLER_NAME, LONG_TX_NAME))}
        self._running = {pid: (pid, str(query_start)) for pid, leader, _a, _t, _s, _w, _age, query_start, *_ in rows
                         if pid == leader and pid in migration and query_start is not None}
        waited_for = {b for row in rows if row[0] in migration and row[13] for b in row[13]} - migration
        for (pid, _leader, app, _type, state, _wait, _age, _qs, query, *_rest, xact_age) in rows:
            if pid in waited_for:
                s.blockers[pid] = Session(pid, app or "", state or "", float(xact_age or 0.0), query or "")
        for (pid, leader, _app, _type, state, wait_type, age, query_start, query, locktype, relation, mode,
             granted, blockers, _xact_age) in rows:
            owner = leader if leader in names else pid
            if owner in migration:
                self._migration_row(t, owner, pid == owner, state, wait_type, age, query_start, query, locktype,
                                    relation, mode, granted, blockers)
            elif names.get(owner, "").startswith(APP_PREFIX) and wait_type == "Lock" and blockers \
                    and migration & set(blockers) and granted is False:
                key = (pid, str(query_start))
                seen = s.blocked.get(key)
                wanted = mode if locktype == "relation" else str(locktype)
                if seen is None:
                    s.blocked[key] = BlockedQuery(pid, query or "", t, t, float(age or 0.0), relation, wanted,
                                                  t - float(age or 0))
                else:
                    seen.last, seen.longest_s = t, max(seen.longest_s, float(age or 0.0))

    def _migration_row(self, t: float, owner: int, leader: bool, state: str | None, wait_type: str | None,
                       age: float | None, query_start: str | None, query: str | None, locktype: str | None,
                       relation: int | None, mode: str | None, granted: bool | None,
                       blockers: list[int] | None) -> None:
        s = self.samples
        if locktype == "relation" and relation is not None and mode is not None:
            key = (owner, relation, mode, bool(granted))
            spans = s.locks.setdefault(key, [])
            if spans and spans[-1].sample == s.count - 1:
                spans[-1].last, spans[-1].sample = t, s.count
            elif not spans or spans[-1].sample != s.count:
                spans.append(Span(t, t, s.count, self._running.get(owner)))
        if leader and query_start is not None:
            key2 = (owner, query_start)
            activity = s.activity.get(key2)
            if activity is None:
                activity = s.activity[key2] = Activity(owner, query_start, query or "", t - float(age or 0.0), t)
            if state == "active":
                activity.last_active = t
            if wait_type == "Lock" and granted is False:
                what = f"{mode} on relation {relation}" if locktype == "relation" else f"a {locktype} lock"
                activity.waiting_for = what
                if blockers:  # a sample that reads the wait as the lock is released sees no blocker: keep the last seen
                    activity.blockers = tuple(blockers)
                activity.wait_first = activity.wait_first or t
                if locktype == "relation" and relation is not None and mode is not None:
                    activity.wait_lock = (relation, mode)
                activity.wait_last = t
            elif state == "active" and wait_type != "Lock" and activity.wait_last and activity.wait_last < t:
                activity.granted_after_wait = True
