"""Running the migration as its tool would: a SQL file statement by statement, or a command.

SQL file: statements run one by one in autocommit (as ``psql -f`` does), the file's own
``BEGIN``/``COMMIT`` blocks run as transactions, and statements that cannot run in a transaction
block (``CREATE INDEX CONCURRENTLY``) run alone. To know exactly what each statement locked, scanned
and rewrote, a transactional statement outside the file's own blocks runs inside a one-statement
transaction (what autocommit does implicitly), and just before that transaction ends the runner
reads, in the same backend, the locks it holds (``pg_locks``), the rows it read per table
(``pg_stat_xact_user_tables``), the tables' ``relfilenode`` (a change is a rewrite) and its
``lock_timeout``. Those reads take about a millisecond, which the statement's locks are held longer.
The first failing statement stops the migration (as ``ON_ERROR_STOP`` and every migration tool do),
except a statement that gave up on its ``lock_timeout``: it is tried again after a backoff (0.5 s,
doubling, at most 8 s), up to ``lock_retries`` times, as deploy tools do, and every attempt is kept.
Inside one of the file's own ``BEGIN``/``COMMIT`` blocks the unit of retry is the block: PostgreSQL
has aborted the transaction, so the block is rolled back and run again from its ``BEGIN`` (what a tool
that wraps a migration in a transaction does: Alembic, Rails, Django, golang-migrate); each try of the
block is kept on the statement that gave up, naming it. Only a lock timeout is retried: a try that
fails for any other reason (an undefined table, a duplicate key) stops the migration as a failure,
with the tries before it.
Each statement's WAL is the LSN difference around it (``pg_current_wal_insert_lsn``; the app's
concurrent appends write a few kB/s of it too).

Command: run with the database's URL in ``DATABASE_URL`` (and friends), in its own process group so
a timeout or Ctrl-C ends all of it; its statements are known only from the sampler. A command that
failed on a lock timeout (its output says "lock timeout") is run again the same way, up to
``lock_retries`` times: a tool like Alembic runs its migration in one transaction, rolled back whole.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from chatbench import external
from chatbench.errors import CommandTimedOut, redact
from chatbench.rehearse.result import TryOutcome
from chatbench.rehearse.statements import Statement

MIGRATION_NAME = "chatbench-rehearse-migration"
BACKOFF_S = 0.5
BACKOFF_MAX_S = 8.0
LOCK_TIMEOUT_TEXT = "lock timeout"  # PostgreSQL's "canceling statement due to lock timeout", in any tool's output
_LSN = "SELECT pg_current_wal_insert_lsn()::text"


def backoff_s(attempt: int) -> float:
    """The pause after the ``attempt``-th try gave up on its lock_timeout."""
    return min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (attempt - 1))


def lsn(conn: psycopg.Connection) -> int:
    row = conn.execute(_LSN).fetchone()
    assert row is not None
    high, low = str(row[0]).split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class Try:
    """One attempt of a statement or of a command (monotonic times)."""

    number: int
    start: float
    end: float
    outcome: TryOutcome
    stopped_at: int | None = None  # a transaction block's try: the statement it gave up (or failed) at

_STORAGE = ("SELECT c.oid::int8, c.relfilenode::int8 FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i', 'p', 'm')")
_READS = ("SELECT relid::int8, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
          "FROM pg_stat_xact_user_tables")
_LOCKS = ("SELECT relation::int8, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' "
          "AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


@dataclass
class Trace:
    """What the runner saw of one statement (times on the monotonic clock)."""

    statement: Statement
    start: float
    end: float = 0.0
    release: float = 0.0
    locks: tuple[tuple[int, str], ...] = ()  # (relation oid, mode) held right after it ran, in its transaction
    read_rows: Mapping[int, int] = field(default_factory=dict)  # table oid -> rows read (None: not observable)
    reads_known: bool = True
    rewrites: tuple[int, ...] = ()  # oids whose relfilenode changed
    lock_timeout: str | None = None
    error: str | None = None
    tries: list[Try] = field(default_factory=list)
    wal_bytes: int | None = None


@dataclass(frozen=True)
class MigrationOutcome:
    outcome: str  # completed | failed | timed out
    failure: str | None
    start: float
    end: float
    traces: tuple[Trace, ...] = ()
    storage_before: Mapping[int, int] = field(default_factory=dict)
    storage_after: Mapping[int, int] = field(default_factory=dict)
    scanned: Mapping[int, int] = field(default_factory=dict)  # a command's sequential reads per table oid
    pid: int | None = None  # the SQL runner's backend
    tries: tuple[Try, ...] = ()  # a command's runs (more than one when one failed on a lock timeout)
    wal_bytes: int | None = None  # WAL from the migration's start to its end (every session's)
    gave_up: bool = False  # the last statement (or command) gave up on its lock_timeout every time


def _storage(conn: psycopg.Connection) -> dict[int, int]:
    return dict(conn.execute(_STORAGE).fetchall())


def _reads(conn: psycopg.Connection) -> dict[int, int]:
    return dict(conn.execute(_READS).fetchall())


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(f"{type(exc).__name__}: {text[0] if text else ''}")


def units(statements: Sequence[Statement]) -> list[tuple[Statement, ...]]:
    """The migration as it is retried: each statement alone, and each of the file's ``BEGIN`` ... ``COMMIT``
    blocks (or ``BEGIN`` to the file's end) whole."""
    out: list[tuple[Statement, ...]] = []
    block: list[Statement] | None = None
    for statement in statements:
        if block is not None:
            block.append(statement)
            if statement.transaction_control in ("commit", "rollback"):
                out.append(tuple(block))
                block = None
        elif statement.transaction_control == "begin":
            block = [statement]
        else:
            out.append((statement,))
    if block is not None:
        out.append(tuple(block))
    return out


def _carry(tries: list[Try], done: Sequence[Trace]) -> None:
    """Keep a block's tries on the statement(s) of its last try that one of them stopped at (else on the last)."""
    stopped = {t.stopped_at for t in tries}
    carriers = [t for t in done if t.statement.index in stopped] or list(done[-1:])
    for trace in carriers:
        trace.tries = list(tries)


class SqlRunner:
    """Runs a migration file's statements on one session of the rehearsal database."""

    def __init__(self, conninfo: str, statements: Sequence[Statement], *, timeout_s: float,
                 on_statement: Callable[[Statement], None] = lambda _s: None, lock_retries: int = 0,
                 on_retry: Callable[[str, int, float], None] = lambda _w, _n, _p: None) -> None:
        self.conninfo = conninfo
        self.statements = statements
        self.timeout_s = timeout_s
        self.lock_retries = lock_retries
        self.on_retry = on_retry
        self.gave_up = False
        self.on_statement = on_statement
        self.timed_out = threading.Event()

    def run(self) -> MigrationOutcome:
        traces: list[Trace] = []
        with psycopg.connect(self.conninfo, autocommit=True, application_name=MIGRATION_NAME) as conn:
            before = _storage(conn)
            pid = conn.info.backend_pid
            timer = threading.Timer(self.timeout_s, self._expire, args=(conn,))
            timer.daemon = True
            wal_start = lsn(conn)
            start = time.monotonic()
            timer.start()
            outcome, failure = "completed", None
            try:
                outcome, failure = self._statements(conn, traces)
            finally:
                timer.cancel()
            end = time.monotonic()
            with contextlib.suppress(psycopg.Error):
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
            usable = not conn.closed and not conn.broken
            after = _storage(conn) if usable else before
            wal = lsn(conn) - wal_start if usable else None
        return MigrationOutcome(outcome, failure, start, end, tuple(traces), before, after, pid=pid, wal_bytes=wal,
                                gave_up=self.gave_up)

    def _expire(self, conn: psycopg.Connection) -> None:
        self.timed_out.set()
        with contextlib.suppress(psycopg.Error):
            conn.cancel_safe() if hasattr(conn, "cancel_safe") else conn.cancel()

    def _statements(self, conn: psycopg.Connection, traces: list[Trace]) -> tuple[str, str | None]:
        for unit in units(self.statements):
            try:
                if unit[0].transaction_control == "begin":
                    self._block(conn, unit, traces)
                    continue
                statement = unit[0]
                self.on_statement(statement)
                trace = Trace(statement, time.monotonic())
                traces.append(trace)
                if statement.transaction_control is not None:  # a COMMIT outside any block: run as psql would
                    conn.execute(statement.sql)
                else:
                    self._retried(conn, trace)
                trace.end = trace.end or time.monotonic()
                trace.release = trace.release or trace.end
            except psycopg.Error as exc:
                trace = traces[-1]
                statement = trace.statement
                trace.end = trace.end or time.monotonic()
                trace.release = trace.release or time.monotonic()
                if self.timed_out.is_set():
                    trace.error = f"did not finish within {self.timeout_s:g} s (--command-timeout)"
                    return "timed out", f"statement {statement.index} (line {statement.line}) {trace.error}"
                trace.error = _one_line(exc)
                if isinstance(exc, psycopg.errors.LockNotAvailable) and trace.tries:
                    self.gave_up = True
                    block = f" of its transaction block (from line {unit[0].line})" if len(unit) > 1 else ""
                    return "failed", (f"statement {statement.index} (line {statement.line}) gave up on its "
                                      f"lock_timeout on all {len(trace.tries)} attempt(s){block}: {trace.error}")
                return "failed", f"statement {statement.index} (line {statement.line}) failed: {trace.error}"
        return "completed", None

    def _retried(self, conn: psycopg.Connection, trace: Trace) -> None:
        """One statement outside the file's blocks, tried again after a backoff while it gives up on its
        lock_timeout (``lock_retries`` times at most); every try is kept in ``trace.tries``."""
        for number in range(1, self.lock_retries + 2):
            start = time.monotonic()
            try:
                self._once(conn, trace)
            except psycopg.errors.LockNotAvailable:
                end = time.monotonic()
                trace.tries.append(Try(number, start, end, "lock timeout"))
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                if number > self.lock_retries or self.timed_out.is_set():
                    trace.start = start
                    trace.end = end
                    raise
                pause = backoff_s(number)
                self.on_retry(f"statement {trace.statement.index}", number, pause)
                if self.timed_out.wait(pause):
                    raise
                continue
            except psycopg.Error:
                # Failed for another reason once it had its lock (or was cancelled): not a lock timeout, so not
                # retried; after earlier lock timeouts this try is kept with them, as the failure's evidence.
                if trace.tries:
                    trace.tries.append(Try(number, max(start, trace.start), time.monotonic(), "failed"))
                raise
            if trace.tries:
                trace.tries.append(Try(number, trace.start, trace.end, "completed"))
            return

    def _block(self, conn: psycopg.Connection, unit: Sequence[Statement], traces: list[Trace]) -> None:
        """One of the file's ``BEGIN`` ... ``COMMIT`` blocks, run again whole after a backoff while a statement in
        it gives up on its lock_timeout (``lock_retries`` times at most).

        A lock timeout aborts the transaction: the statements before it in the block are rolled back with it, so
        retrying the one statement would run it without them (or fail: "current transaction is aborted"). Deploy
        tools retry the transaction instead, from its start; so does this. ``traces`` ends with the last try's
        statements (what the migration did), and the statement(s) that gave up carry every try of the block.
        """
        tries: list[Try] = []
        kept = len(traces)
        for number in range(1, self.lock_retries + 2):
            del traces[kept:]  # an earlier try's statements were rolled back: the last try is the migration's
            began = time.monotonic()
            done: list[Trace] = []
            try:
                for statement in unit:
                    self.on_statement(statement)
                    trace = Trace(statement, time.monotonic())
                    traces.append(trace)
                    done.append(trace)
                    if statement.transaction_control is None:
                        self._observed(conn, trace)
                    else:
                        conn.execute(statement.sql)
                        trace.end = time.monotonic()
                        if statement.transaction_control != "begin":
                            for held in done:
                                held.release = trace.end
                    trace.end = trace.end or time.monotonic()
            except psycopg.errors.LockNotAvailable:
                end = time.monotonic()
                stopped = done[-1]
                stopped.end = end
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
                for held in done:
                    held.release = held.release or time.monotonic()
                tries.append(Try(number, began, end, "lock timeout", stopped.statement.index))
                if number > self.lock_retries or self.timed_out.is_set():
                    _carry(tries, done)
                    raise
                pause = backoff_s(number)
                self.on_retry(f"statement {stopped.statement.index} (its transaction block from line {unit[0].line} "
                              "rolled back, to run again from its BEGIN)", number, pause)
                if self.timed_out.wait(pause):
                    _carry(tries, done)
                    raise
                continue
            except psycopg.Error:
                now = time.monotonic()
                for held in done:
                    held.release = held.release or now
                if tries:  # failed otherwise after earlier lock timeouts: kept with them, as the failure's evidence
                    tries.append(Try(number, began, now, "failed", done[-1].statement.index))
                    _carry(tries, done)
                raise
            end = time.monotonic()
            for held in done:  # an unterminated block: rolled back when the migration's session ends
                held.release = held.release or end
            if tries:
                tries.append(Try(number, began, end, "completed"))
                _carry(tries, done)
            return

    def _once(self, conn: psycopg.Connection, trace: Trace) -> None:
        if trace.statement.no_transaction_block:
            self._alone(conn, trace)
            return
        conn.execute("BEGIN")
        try:
            self._observed(conn, trace)
        except psycopg.errors.ActiveSqlTransaction:  # refused in a block after all: run it alone
            conn.execute("ROLLBACK")
            trace.start = time.monotonic()
            self._alone(conn, trace)
        else:
            conn.execute("COMMIT")
            trace.release = time.monotonic()

    @staticmethod
    def _observed(conn: psycopg.Connection, trace: Trace) -> None:
        """Run the statement inside the current transaction and read what it took before it ends."""
        storage, reads = _storage(conn), _reads(conn)
        wal = lsn(conn)
        trace.start = time.monotonic()
        conn.execute(trace.statement.sql.encode())
        trace.end = time.monotonic()
        trace.wal_bytes = lsn(conn) - wal
        after_reads = _reads(conn)
        trace.read_rows = {oid: n - reads.get(oid, 0) for oid, n in after_reads.items() if n - reads.get(oid, 0) > 0}
        after = _storage(conn)
        trace.rewrites = tuple(oid for oid, node in storage.items() if oid in after and after[oid] != node)
        trace.locks = tuple((int(r), str(m)) for r, m in conn.execute(_LOCKS).fetchall())
        row = conn.execute("SELECT current_setting('lock_timeout')").fetchone()
        trace.lock_timeout = str(row[0]) if row else None

    @staticmethod
    def _alone(conn: psycopg.Connection, trace: Trace) -> None:
        """A statement that must run outside a transaction block: its locks come from the sampler."""
        row = conn.execute("SELECT current_setting('lock_timeout')").fetchone()
        trace.lock_timeout = str(row[0]) if row else None
        storage = _storage(conn)
        wal = lsn(conn)
        trace.start = time.monotonic()
        conn.execute(trace.statement.sql.encode())
        trace.end = trace.release = time.monotonic()
        trace.wal_bytes = lsn(conn) - wal
        after = _storage(conn)
        trace.rewrites = tuple(oid for oid, node in storage.items() if oid in after and after[oid] != node)
        trace.reads_known = False


_SEQ_READS = "SELECT relid::int8, coalesce(seq_tup_read, 0) FROM pg_stat_user_tables"
_OTHERS = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
           "AND backend_type = 'client backend' AND application_name NOT LIKE 'chatbench-rehearse-%'")


def _seq_reads_after(conninfo: str, before: Mapping[int, int]) -> dict[int, int]:
    """Rows a command read by sequential scans, per table: its sessions flush their statistics when they end.

    The app's queries read by index, so a table's ``seq_tup_read`` moves only when the migration scans it.
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        deadline = time.monotonic() + 5.0
        while (conn.execute(_OTHERS).fetchone() or (0,))[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        after: dict[int, int] = dict(conn.execute(_SEQ_READS).fetchall())
    return {oid: n - before.get(oid, 0) for oid, n in after.items() if n - before.get(oid, 0) > 0}


def run_command(command: str, env: Mapping[str, str], *, timeout_s: float, conninfo: str,
                lock_retries: int = 0, on_retry: Callable[[int, float], None] = lambda _n, _p: None
                ) -> MigrationOutcome:
    """Run a migration command (``chatbench.external.run``: its own process group, ended with everything
    it started on a timeout or Ctrl-C, output scrubbed); a hang is an outcome here, not an error. A run
    that failed on a lock timeout is run again after a backoff, ``lock_retries`` times at most."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        before = _storage(conn)
        seq_before: dict[int, int] = dict(conn.execute(_SEQ_READS).fetchall())
        wal_start = lsn(conn)
    start = time.monotonic()
    tries: list[Try] = []
    for number in range(1, lock_retries + 2):
        began = time.monotonic()
        left = timeout_s - (began - start)
        try:
            done = external.run(command, what="--migration-cmd", timeout=max(left, 0.001), env=env)
        except CommandTimedOut:
            return MigrationOutcome("timed out", f"--migration-cmd {command!r} did not finish within {timeout_s:g} s "
                                    "(--command-timeout)", start, time.monotonic(), (), before, before,
                                    tries=tuple(tries))
        gave_up = done.returncode != 0 and LOCK_TIMEOUT_TEXT in done.tail().lower()
        tries.append(Try(number, began, time.monotonic(), "lock timeout" if gave_up else
                         "completed" if done.returncode == 0 else "failed"))
        if not gave_up or number > lock_retries:
            break
        pause = backoff_s(number)
        on_retry(number, pause)
        time.sleep(pause)
    end = time.monotonic()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        after = _storage(conn)
        wal = lsn(conn) - wal_start
    if done.returncode != 0:
        attempts = f" on all {len(tries)} attempt(s), each giving up on its lock_timeout" if gave_up else ""
        return MigrationOutcome("failed", f"--migration-cmd {command!r} exited {done.returncode}{attempts}: "
                                f"{done.tail()}", start, end, (), before, after, tries=tuple(tries), wal_bytes=wal,
                                gave_up=gave_up)
    return MigrationOutcome("completed", None, start, end, (), before, after, _seq_reads_after(conninfo, seq_before),
                            tries=tuple(tries), wal_bytes=wal)
