"""Binary COPY of rendered rows: render processes feed one COPY stream in id order.

Messages go into the database through one ``COPY ... (FORMAT BINARY, FREEZE)`` in the transaction
that created (or truncated) the table: the server writes no WAL for it (``wal_level=minimal``),
the rows arrive frozen and their pages all-visible, so no VACUUM pass is needed afterwards, and the
physical row order is the id order, the same in every run. One server backend parses the stream;
rendering (numpy + pools, about half the backend's cost per row) runs beside it in ``workers``
forked processes, each taking whole skeleton buckets in turn (bucket ``b`` goes to worker
``b % workers``) and sending the rendered pieces through its own pipe. The parent reads the pipes
in bucket order and writes to the COPY; a full pipe stops a worker that runs ahead, so memory stays
bounded at about one bucket and two pieces per worker, whatever the size.

A piece's bytes depend only on its rows (``encode.message_rows``), so the data is the same whatever
the number of workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import pickle
import queue
import select
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from chatbench.errors import ChatbenchError, redact
from chatbench.loadgen.encode import SIGNATURE, TRAILER, TableLayout, message_pieces, message_rows
from chatbench.loadgen.plan import RenderInputs, read_bucket
from chatbench.loadgen.pools import Pools
from chatbench.settings import current

OnRows = Callable[[int], None]
_HEADER = struct.Struct("<q")
_PIPE_BYTES = 1 << 20  # a larger pipe buffer: fewer wake-ups per piece (best effort)


class LoadError(ChatbenchError):
    """A render worker failed or stalled; the database is half-loaded (and never cached)."""


def copy_bytes(conn: psycopg.Connection, statement: str, rows: bytes | Iterator[bytes]) -> None:
    """One binary COPY of pre-rendered rows (signature and trailer added here)."""
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(SIGNATURE)
        for part in [rows] if isinstance(rows, bytes) else rows:
            # Large writes are split by psycopg itself; a memoryview avoids copying the rows again.
            copy.write(memoryview(part))
        copy.write(TRAILER)


@dataclass(frozen=True)
class _Job:
    """What a render worker is told once the plan's inputs exist (small: the arrays are read from files)."""

    directory: Path  # the skeleton's
    sort: bool
    inputs: tuple[int, int, float, Path]  # RenderInputs.save()
    chunk_rows: int
    layout: TableLayout  # the messages table's columns and keys


_POOLS: Pools | None = None  # set in the parent just before forking; inherited by the workers


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send(fd: int, message: object) -> None:
    body = pickle.dumps(message)
    _write_all(fd, _HEADER.pack(len(body)) + body)


def _receive(fd: int) -> Any:
    """The next message on a control pipe, or None at its end."""
    header = _read_blocking(fd, _HEADER.size)
    return None if header is None else pickle.loads(_read_blocking(fd, _HEADER.unpack(header)[0]) or b"")


def _read_blocking(fd: int, size: int) -> bytes | None:
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = os.read(fd, size - got)
        if not part:
            return None
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _read_exactly(fd: int, size: int, deadline: Callable[[], None]) -> bytearray:
    """``size`` bytes from a pipe; ``deadline()`` is called while waiting (it raises on a stall)."""
    out = bytearray(size)
    view = memoryview(out)
    got = 0
    while got < size:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            deadline()
            continue
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise EOFError
        got += n
    return out


def _worker(job_fd: int, write_fd: int, inherited: list[int], errors: Any) -> None:
    pools = _POOLS
    assert pools is not None
    code = 0
    try:
        for fd in inherited:  # other workers' pipe ends: their reader must see our exit, not our copy
            os.close(fd)
        job: _Job | None = _receive(job_fd)
        if job is None:
            os._exit(0)  # the parent gave up before the plan was made
        inputs = RenderInputs.load(*job.inputs)
        while (bucket := _receive(job_fd)) is not None:
            index, first, count = bucket
            rows = read_bucket(job.directory, index, first, job.sort)
            for lo, hi in message_pieces(inputs.total, first, first + count, job.chunk_rows):
                data = message_rows(inputs, pools, rows, lo, hi, job.chunk_rows, job.layout)
                _write_all(write_fd, _HEADER.pack(len(data)))
                _write_all(write_fd, data)
                del data
            del rows
    except BrokenPipeError:
        code = 1  # the parent stopped reading (it failed or was interrupted): nothing to report
    except BaseException as exc:
        detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        errors.put((f"{type(exc).__name__}: {detail}", redact(traceback.format_exc())))
        errors.close()
        errors.join_thread()
        code = 1
    os._exit(code)


class _Aborted(Exception):
    """The COPY side gave up: stop drawing the plan."""


class RenderWorkers:
    """Forked render processes; ``pieces()`` yields rendered message pieces in id order.

    Forked before the plan is drawn, so a worker inherits only the pools and the imports, not the
    plan's arrays: its memory is its own bucket and pieces, whatever the size. The plan, drawn on
    another thread, hands over its inputs (``start``) and each bucket as soon as it is complete
    (``bucket_ready``): bucket ``b`` goes to worker ``b % workers``, and the COPY begins while the
    plan is still being drawn. ``done()`` (or ``failed()``) ends the hand-over.
    """

    def __init__(self, pools: Pools, workers: int, chunk_rows: int) -> None:
        global _POOLS
        self.workers = workers
        self.chunk_rows = chunk_rows
        self._total = 0
        self._ready: queue.Queue[tuple[int, int, int] | BaseException | None] = queue.Queue()
        self._aborted = False
        self._jobs_lock = threading.Lock()  # the plan's thread writes the control pipes; close() shuts them
        ctx = mp.get_context("fork")
        self._errors: Any = ctx.Queue()
        self._fds: list[int] = []  # data pipes, read ends
        self._jobs: list[int] = []  # control pipes, write ends
        self._procs: list[Any] = []
        _POOLS = pools
        try:
            for _ in range(workers):
                read_fd, write_fd = os.pipe()
                job_read, job_write = os.pipe()
                with contextlib.suppress(OSError):
                    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
                inherited = [*self._fds, *self._jobs, read_fd, job_write]
                proc = ctx.Process(target=_worker, args=(job_read, write_fd, inherited, self._errors), daemon=True)
                proc.start()
                os.close(write_fd)  # only the worker writes: its exit is our end of file
                os.close(job_read)
                self._fds.append(read_fd)
                self._jobs.append(job_write)
                self._procs.append(proc)
        except BaseException:
            self.close()
            raise
        finally:
            _POOLS = None

    # --- the plan's side (another thread) ---------------------------------------------------------

    def start(self, inputs: RenderInputs, directory: Path, sort: bool, layout: TableLayout) -> None:
        """What rendering needs: the arrays go beside the skeleton, the rest to every worker."""
        self._total = inputs.total
        job = _Job(directory, sort, inputs.save(directory), self.chunk_rows, layout)
        with self._jobs_lock:
            self._check_aborted()
            for fd in self._jobs:
                _send(fd, job)

    def bucket_ready(self, bucket: int, first: int, rows: int) -> None:
        with self._jobs_lock:
            self._check_aborted()
            _send(self._jobs[bucket % self.workers], (bucket, first, rows))
        self._ready.put((bucket, first, rows))

    def done(self) -> None:
        """Every bucket was handed over: workers exit after their last one."""
        self._close_jobs()
        self._ready.put(None)

    def failed(self, error: BaseException) -> None:
        self._close_jobs()
        self._ready.put(error)

    def _check_aborted(self) -> None:
        if self._aborted:
            raise _Aborted("the COPY stopped; the plan is no longer needed")

    def _close_jobs(self) -> None:
        with self._jobs_lock:
            for fd in self._jobs:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._jobs = []

    # --- the COPY's side ----------------------------------------------------------------------------

    def _failure(self, worker: int) -> LoadError:
        proc = self._procs[worker]
        proc.join(timeout=1)
        with contextlib.suppress(queue.Empty):
            return LoadError(f"render worker failed: {self._errors.get(timeout=1)[0]}")
        return LoadError(f"render worker {proc.pid} exited with code {proc.exitcode} before sending all rows")

    def pieces(self) -> Iterator[tuple[int, bytearray]]:
        """(rows, bytes) of every message piece, in id order, as buckets become ready. A piece (50k rows by
        default) renders in a few tens of milliseconds: a worker whose turn it is that sends nothing for
        the ``copy_stall_seconds`` setting is stuck, and the seed fails instead of hanging."""
        stall_seconds = float(current("copy_stall_seconds"))
        while (ready := self._ready.get()) is not None:
            if isinstance(ready, BaseException):
                raise ready
            bucket, first, count = ready
            worker = bucket % len(self._procs)
            fd = self._fds[worker]
            for lo, hi in message_pieces(self._total, first, first + count, self.chunk_rows):
                waited_since = time.monotonic()

                def check(worker: int = worker, since: float = waited_since) -> None:
                    if self._procs[worker].exitcode not in (None, 0):
                        raise self._failure(worker)
                    if time.monotonic() - since > stall_seconds:
                        raise LoadError(
                            f"render worker {self._procs[worker].pid} sent nothing for {stall_seconds:.0f} s; "
                            "the seed was abandoned (nothing is cached); run again, or with --workers 1"
                        )

                try:
                    size = _HEADER.unpack(_read_exactly(fd, _HEADER.size, check))[0]
                    data = _read_exactly(fd, size, check)
                except EOFError:
                    raise self._failure(worker) from None
                yield hi - lo, data

    def close(self) -> None:
        with self._jobs_lock:
            self._aborted = True  # a plan still being drawn stops at its next bucket
        self._close_jobs()
        for fd in self._fds:
            os.close(fd)  # a waiting worker reads end of file; a writing one gets EPIPE: both exit
        self._fds = []
        for proc in self._procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._procs = []

    def __enter__(self) -> RenderWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def copy_messages(copy: psycopg.Copy, renderers: RenderWorkers, on_rows: OnRows) -> None:
    """Write every message piece to an open binary COPY, in id order."""
    copy.write(SIGNATURE)
    for rows, data in renderers.pieces():
        copy.write(memoryview(data))
        on_rows(rows)
    copy.write(TRAILER)
