"""The long transaction production always has, open across the migration's start.

An analytics query, a ``pg_dump`` or a session idle in transaction holds ACCESS SHARE on the tables it
read until it ends. A migration statement that needs ACCESS EXCLUSIVE (even a metadata-only ``ADD
COLUMN``) waits behind it, and every app query on the table then waits behind the migration's waiting
lock: the chat is down for as long as the long transaction runs, unless the statement gives up on its
``lock_timeout`` and retries. The short queries of the live load never make a statement wait, so the
rehearsal opens this session itself: it reads each table the app uses (``SELECT * ... LIMIT 0``: the
ACCESS SHARE lock a read takes, and no row, so a command's scans, counted from the tables' statistics,
stay the migration's own), READ COMMITTED, so it holds the locks but no snapshot, as a session idle in
transaction does (a ``CREATE INDEX CONCURRENTLY`` does not wait for it), and commits ``seconds`` after
the migration started.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

LONG_TX_NAME = "chatbench-rehearse-long-transaction"


@dataclass(frozen=True)
class Opened:
    """The long transaction as it ran (monotonic times)."""

    pid: int
    tables: tuple[str, ...]
    start: float
    end: float


class LongTransaction:
    """``open()`` reads the tables and keeps the transaction; ``end_after(t0)`` commits ``seconds`` after ``t0``."""

    def __init__(self, conninfo: str, tables: Sequence[str], seconds: float) -> None:
        self.seconds = seconds
        self.tables = tuple(tables)
        self._conn = psycopg.connect(conninfo, application_name=LONG_TX_NAME)
        self.pid = self._conn.info.backend_pid
        self.start = 0.0
        self.end = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self.start = time.monotonic()
        for table in self.tables:
            self._conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(sql.Identifier(table))).fetchall()

    def end_after(self, t0: float) -> None:
        """Commit ``seconds`` after ``t0`` (the migration's start), from a timer thread."""
        self._timer = threading.Timer(max(0.0, t0 + self.seconds - time.monotonic()), self.close)
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        with self._lock:
            if self._conn.closed:
                return
            with contextlib.suppress(psycopg.Error):
                self._conn.commit()
            self.end = time.monotonic()
            self._conn.close()

    def stop(self) -> Opened | None:
        """End it now if the timer has not (a migration that ended first), and say how it ran."""
        if self._timer is not None:
            self._timer.cancel()
        self.close()
        return Opened(self.pid, self.tables, self.start, self.end) if self.start else None


@contextlib.contextmanager
def long_transaction(conninfo: str, tables: Sequence[str], seconds: float) -> Iterator[LongTransaction | None]:
    """A ``LongTransaction`` (None when ``seconds`` is 0), ended on every way out."""
    if seconds <= 0 or not tables:
        yield None
        return
    held = LongTransaction(conninfo, tables, seconds)
    try:
        yield held
    finally:
        held.stop()
