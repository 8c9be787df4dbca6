"""Binary COPY of rendered chunks, in this process or in forked worker processes.

Workers are forked after the plan and pools exist, so they inherit them without pickling; each
claims chunk indexes from a shared counter, renders the chunk (deterministic in its index alone)
and COPYs it on its own connection, in one transaction per worker. Memory stays bounded by the
chunk size times the number of workers whatever the total. Progress is reported as row counts over
a queue; the parent turns them into a progress bar.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from chatbench.loadgen.encode import MESSAGES_COPY, SIGNATURE, TRAILER, message_rows
from chatbench.loadgen.plan import Plan
from chatbench.loadgen.pools import Pools

from chatbench.errors import ChatbenchError, redact

OnRows = Callable[[int], None]
# A chunk (50k rows by default) renders and loads in about a second; this long without any word from
# any worker means one is stuck (a rare hang was seen once under heavy load), and waiting for ever
# would hang the whole run instead of failing it.
STALL_SECONDS = float(os.environ.get("CHATBENCH_COPY_STALL_SECONDS", "120"))


class LoadError(ChatbenchError):
    """A COPY worker failed; the database is half-loaded (and never cached)."""


def copy_bytes(conn: psycopg.Connection, statement: str, rows: bytes) -> None:
    """One binary COPY of pre-rendered rows (signature and trailer added here)."""
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(SIGNATURE)
        # Large writes are split by psycopg itself; a memoryview avoids copying the chunk again.
        copy.write(memoryview(rows))
        copy.write(TRAILER)


@dataclass(frozen=True)
class _Job:
    conninfo: str
    plan: Plan
    pools: Pools
    chunks: Sequence[tuple[int, int]]


_JOB: _Job | None = None  # set in the parent just before forking; inherited by the workers


def _copy_chunks(conn: psycopg.Connection, job: _Job, claim: Callable[[], int | None], on_rows: OnRows) -> None:
    while (index := claim()) is not None:
        lo, hi = job.chunks[index]
        copy_bytes(conn, MESSAGES_COPY, message_rows(job.plan, job.pools, index, lo, hi))
        on_rows(hi - lo)


def _worker(counter: Any, events: mp.Queue) -> None:  # counter: a multiprocessing Value('i')
    job = _JOB
    assert job is not None
    try:

        def claim() -> int | None:
            with counter.get_lock():
                index = counter.value
                if index >= len(job.chunks):
                    return None
                counter.value = index + 1
                return int(index)

        with psycopg.connect(job.conninfo) as conn:
            _copy_chunks(conn, job, claim, lambda n: events.put(("rows", n)))
        events.put(("done", os.getpid()))
        code = 0
    except BaseException as exc:
        detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        events.put(("error", f"{type(exc).__name__}: {detail}", redact(traceback.format_exc())))
        code = 1
    # Flush the queue's feeder thread before leaving without the parent's atexit handlers.
    events.close()
    events.join_thread()
    os._exit(code)


def copy_messages(
    conninfo: str,
    plan: Plan,
    pools: Pools,
    chunks: Sequence[tuple[int, int]],
    workers: int,
    on_rows: OnRows,
    in_parent: Callable[[], None] | None = None,
) -> None:
    """COPY every message chunk with ``workers`` processes; ``in_parent`` runs meanwhile (small tables)."""
    global _JOB
    job = _Job(conninfo, plan, pools, chunks)
    if workers <= 1:
        if in_parent is not None:
            in_parent()
        pending = iter(range(len(chunks)))
        with psycopg.connect(conninfo) as conn:
            _copy_chunks(conn, job, lambda: next(pending, None), on_rows)
        return
    ctx = mp.get_context("fork")
    counter = ctx.Value("i", 0)
    events: mp.Queue = ctx.Queue()
    _JOB = job
    procs = [ctx.Process(target=_worker, args=(counter, events), daemon=True) for _ in range(workers)]
    try:
        for proc in procs:
            proc.start()
    finally:
        _JOB = None
    try:
        if in_parent is not None:
            in_parent()
        done = 0
        last_event = time.monotonic()
        while done < len(procs):
            try:
                event = events.get(timeout=0.5)
                last_event = time.monotonic()
            except queue.Empty:
                if time.monotonic() - last_event > STALL_SECONDS:
                    raise LoadError(
                        f"COPY workers made no progress for {STALL_SECONDS:.0f} s; the seed was abandoned "
                        "(nothing is cached); run again, or with --workers 1"
                    ) from None
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise LoadError(f"COPY worker {dead[0].pid} died with exit code {dead[0].exitcode}") from None
                if all(p.exitcode is not None for p in procs) and events.empty():
                    raise LoadError("COPY workers exited without reporting completion") from None
                continue
            if event[0] == "rows":
                on_rows(event[1])
            elif event[0] == "done":
                done += 1
            else:
                raise LoadError(f"COPY worker failed: {event[1]}")
    finally:
        for proc in procs:
            if proc.is_alive() and proc.exitcode is None:
                proc.join(timeout=0.1)
            if proc.is_alive():
                proc.kill()
            proc.join()
