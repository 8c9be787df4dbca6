"""The app clients of the rehearsal's live load, as they run: ``python -m chatbench.rehearse.appclient`` is
the launcher, and each client is a process the launcher forks.

The launcher is a plain subprocess, not multiprocessing: it imports only psycopg (its spawn or forkserver
would import the parent's main module again, the whole CLI), and it starts once per parent process
(``rehearse.launcher``): a client forked from it starts in about a millisecond where a fresh interpreter
took 0.15 s, four of them per rehearsal. The parent sends it, over its stdin (a Unix socket), one byte
and two file descriptors per client: the client's channel (one end of a socket pair) and the stderr the
client's errors go to (the parent's, as it is when the client starts). The launcher forks the client and
answers with a pidfd of it, so the parent can wait for it and kill it without pid races; it reaps its
exited clients and leaves when the parent closes the control socket. Neither reacts to Ctrl-C: that is the
parent's to handle.

A client reads its ``ClientTask`` (length-prefixed pickle) from its channel, connects, prepares every
statement, writes one byte (ready) and runs until the parent writes the stop byte; then it writes its
requests (length-prefixed pickle) and exits. A closed channel (the parent is gone, even by SIGKILL) stops
it too, so no client outlives its parent by more than the request it is in. An operation marked
``rolled_back`` (the application's own writes) runs between a BEGIN and a ROLLBACK every request.

Open loop: arrivals follow a Poisson schedule at the client's share of the fixed rate, and each
request's latency is measured from its intended start, so a request stuck behind the migration's
lock delays the client's clock and every request queued behind it counts that wait (as it would in
an app with a bounded connection pool). Times are ``time.monotonic`` seconds: one system-wide clock
on Linux, shared with the parent's sampler and migration runner.
"""

from __future__ import annotations

import os
import pickle
import random
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

APP_PREFIX = "chatbench-rehearse-app-"
MAX_ERROR_SAMPLES = 5
READY = b"R"  # client -> parent: connected, statements prepared
STOP = b"S"  # parent -> client: stop and hand back the requests
LAUNCH = b"L"  # parent -> launcher, with the client's channel and stderr
LENGTH = struct.Struct("!Q")  # the prefix of a pickled message on a channel
REAP_EVERY_S = 1.0  # how often an idle launcher reaps its exited clients

Events = list[tuple[int, float, float, float, bool, bool]]  # (op, due, sent, done, ok, served)


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


def send_message(channel: socket.socket, message: object) -> None:
    """A pickled message, length first: the reader knows where it ends without waiting for EOF."""
    data = pickle.dumps(message)
    channel.sendall(LENGTH.pack(len(data)) + data)


def read_exactly(channel: socket.socket, size: int, deadline: float | None = None) -> bytes:
    """``size`` bytes from ``channel``; EOFError when it closes first, TimeoutError past ``deadline``
    (``time.monotonic``; None: wait as long as it takes)."""
    chunks: list[bytes] = []
    while size:
        if deadline is not None and not select.select([channel], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError
        chunk = channel.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_message(channel: socket.socket, deadline: float | None = None) -> Any:
    """The next message ``send_message`` wrote (errors as ``read_exactly``'s)."""
    (size,) = LENGTH.unpack(read_exactly(channel, LENGTH.size, deadline))
    return pickle.loads(read_exactly(channel, size, deadline))


def run_client(task: ClientTask, channel: socket.socket) -> tuple[list[str], Events, list[str]]:
    """Run the task's open-loop load until the parent writes ``STOP`` (or closes the channel); the requests."""
    stopping = False

    def wait(seconds: float) -> None:
        """Sleep ``seconds``, or less when the parent asks to stop (a closed channel asks too)."""
        nonlocal stopping
        if select.select([channel], [], [], max(0.0, seconds))[0]:
            stopping = True

    rng = random.Random(task.seed * 1000 + task.index)
    names = [n for n, w in task.weights.items() if w > 0]
    weights = [task.weights[n] for n in names]
    events: Events = []
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
        channel.sendall(READY)
        intended = time.monotonic()
        while True:
            intended += rng.expovariate(task.rate_per_s)
            wait(intended - time.monotonic())
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


def _client(channel: socket.socket) -> int:
    """A forked client's whole life; its exit code."""
    try:
        task = read_message(channel)
        send_message(channel, run_client(task, channel))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return 0  # the parent is gone: nobody to hand the requests to
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _reap() -> None:
    """Collect the exit status of every client that has exited (the parent waits on its pidfd instead)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(control: socket.socket) -> None:
    """The launcher: fork a client for each ``LAUNCH`` on ``control`` until the parent closes it."""
    while True:
        if not select.select([control], [], [], REAP_EVERY_S)[0]:
            _reap()
            continue
        try:
            message, fds, _flags, _address = socket.recv_fds(control, 1, 2)
        except ConnectionResetError:
            message, fds = b"", []
        if not message:
            return  # the parent is gone or done
        channel_fd, stderr_fd = fds
        pid = os.fork()
        if pid == 0:
            control.close()
            os.dup2(stderr_fd, 2)
            os.close(stderr_fd)
            code = _client(socket.socket(fileno=channel_fd))
            sys.stderr.flush()
            os._exit(code)
        pidfd = os.pidfd_open(pid)  # before any reaping: the pid is this child's until then
        try:
            socket.send_fds(control, [LAUNCH], [pidfd])
        except OSError:
            return  # the parent went while it asked: its client sees its channel closed and stops
        finally:
            for fd in (pidfd, channel_fd, stderr_fd):
                os.close(fd)
        _reap()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(socket.socket(fileno=sys.stdin.fileno()))


if __name__ == "__main__":
    main()
