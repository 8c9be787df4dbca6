"""One app client process of the rehearsal's live load: ``python -m chatbench.rehearse.appclient``.

A plain subprocess, not multiprocessing: it imports only psycopg, so it starts in a fraction of a
second whatever the parent's main module is (multiprocessing's spawn would import that again).
The parent writes a pickled ``ClientTask`` to its stdin; the client connects, prepares every
statement, writes one byte (ready) to stdout, and runs until SIGUSR1; then it writes its requests,
pickled, and exits. Ctrl-C is the parent's to handle: the client ignores SIGINT. An operation marked
``rolled_back`` (the application's own writes) runs between a BEGIN and a ROLLBACK every request.

Open loop: arrivals follow a Poisson schedule at the client's share of the fixed rate, and each
request's latency is measured from its intended start, so a request stuck behind the migration's
lock delays the client's clock and every request queued behind it counts that wait (as it would in
an app with a bounded connection pool). Times are ``time.monotonic`` seconds: one system-wide clock
on Linux, shared with the parent's sampler and migration runner.
"""

from __future__ import annotations

import pickle
import random
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

APP_PREFIX = "chatbench-rehearse-app-"
MAX_ERROR_SAMPLES = 5
READY = b"R"


@dataclass(frozen=True)
class ClientTask:
    """Everything a client needs (picklable)."""

    index: int
    conninfo: str
    sql: Mapping[str, str]  # operation -> SQL with %(name)s placeholders
    returns_rows: Mapping[str, bool]
    weights: Mapping[str, float]
    pools: Mapping[str, list[dict[str, Any]]]
    rate_per_s: float  # this client's arrival rate
    seed: int
    rolled_back: Mapping[str, bool] = field(default_factory=dict)  # operation -> run in a transaction rolled back


def run_client(task: ClientTask) -> tuple[list[str], list[tuple[int, float, float, float, bool, bool]], list[str]]:
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGUSR1, stop)
    rng = random.Random(task.seed * 1000 + task.index)
    names = [n for n, w in task.weights.items() if w > 0]
    weights = [task.weights[n] for n in names]
    events: list[tuple[int, float, float, float, bool, bool]] = []  # (op, due, sent, done, ok, served)
    errors: list[str] = []
    app_name = f"{APP_PREFIX}{task.index}"
    conn = psycopg.connect(task.conninfo, autocommit=True, application_name=app_name)

    def one(name: str) -> bool:
        nonlocal conn
        rolled_back = task.rolled_back.get(name, False)
        try:
            if rolled_back:  # sent as they are: psycopg's transaction() would DEALLOCATE the prepared statements
                conn.pgconn.exec_(b"BEGIN")
            try:
                cur = conn.execute(task.sql[name], rng.choice(task.pools[name]), prepare=True)
                if task.returns_rows[name]:
                    cur.fetchall()
            finally:
                if rolled_back and not conn.closed:
                    conn.pgconn.exec_(b"ROLLBACK")
            return True
        except psycopg.Error as exc:
            if len(errors) < MAX_ERROR_SAMPLES:
                errors.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
            if conn.closed or conn.broken:
                conn = psycopg.connect(task.conninfo, autocommit=True, application_name=app_name)
            return False

    try:
        for name in names:  # prepare every statement before the clock starts
            one(name)
        sys.stdout.buffer.write(READY)
        sys.stdout.buffer.flush()
        intended = time.monotonic()
        while True:
            intended += rng.expovariate(task.rate_per_s)
            while not stopping and (delay := intended - time.monotonic()) > 0:
                time.sleep(min(delay, 0.05))
            if stopping:
                break
            operation = rng.choices(range(len(names)), weights)[0]
            sent = time.monotonic()
            ok = one(names[operation])
            events.append((operation, intended, sent, time.monotonic(), ok, True))
        # The backlog: requests already due when the load stopped, never sent because the client was still
        # working off earlier ones. Dropping them would make a saturated load look idle; each waited at least
        # until now (its latency is a lower bound) and is marked not served.
        stopped = time.monotonic()
        while intended <= stopped:
            events.append((rng.choices(range(len(names)), weights)[0], intended, stopped, stopped, True, False))
            intended += rng.expovariate(task.rate_per_s)
    finally:
        conn.close()
    return names, events, errors


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    task = pickle.load(sys.stdin.buffer)
    result = run_client(task)
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
