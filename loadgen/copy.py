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
import struct
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from chatbench.loadgen.encode import SIGNATURE, TRAILER, message_pieces, message_rows
from chatbench.loadgen.plan import Plan, RenderInputs, Skeleton
from chatbench.loadgen.pools import Pools

from chatbench.errors import ChatbenchError, redact

OnRows = Callable[[int], None]
# A piece (50k rows by default) renders in a few tens of milliseconds; this long without a byte
# from the worker whose turn it is means it is stuck, and waiting for ever would hang the run.
STALL_SECONDS = float(os.environ.get("CHATBENCH_COPY_STALL_SECONDS", "120"))
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
    """What a render worker is told once the plan exists (small: the arrays are read from files)."""

    skeleton: Skeleton
    inputs: tuple[int, int, float, Path]  # RenderInputs.save()
    workers: int
    chunk_rows: int


_POOLS: Pools | None = None  # set in the parent just before forking; inherited by the workers


def _pieces(skeleton: Skeleton, bucket: int, chunk_rows: int) -> list[tuple[int, int]]:
    offsets = skeleton.offsets
    return message_pieces(offsets[-1], offsets[bucket], offsets[bucket + 1], chunk_rows)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int, deadline: Callable[[], None]) -> bytearray:
    """``size`` bytes from a pipe; ``deadline()`` is called while waiting (it raises on a stall)."""
    import select

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


def _worker(index: int, job_fd: int, write_fd: int, inherited: list[int], errors: Any) -> None:
    pools = _POOLS
    assert pools is not None
    code = 0
    try:
        for fd in inherited:  # other workers' pipe ends: their reader must see our exit, not our copy
            os.close(fd)
        with os.fdopen(job_fd, "rb") as control:
            message = control.read()
        if not message:
            os._exit(0)  # the parent gave up before the plan was made
        job: _Job = pickle.loads(message)
        inputs = RenderInputs.load(*job.inputs)
        skeleton = job.skeleton
        for bucket in range(index, skeleton.buckets, job.workers):
            rows = skeleton.bucket(bucket)
            for lo, hi in _pieces(skeleton, bucket, job.chunk_rows):
                data = message_rows(inputs, pools, rows, lo, hi, job.chunk_rows)
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


class RenderWorkers:
    """Forked render processes; ``pieces()`` yields rendered message pieces in id order.

    Forked before the plan is drawn (``begin(plan)`` hands it over through files), so a worker
    inherits only the pools and the imports, not the plan's arrays: its memory is its own bucket and
    pieces, whatever the size.
    """

    def __init__(self, pools: Pools, workers: int, chunk_rows: int) -> None:
        global _POOLS
        self.workers = workers
        self.chunk_rows = chunk_rows
        self.skeleton: Skeleton | None = None
        ctx = mp.get_context("fork")
        self._errors: Any = ctx.Queue()
        self._fds: list[int] = []  # data pipes, read ends
        self._jobs: list[int] = []  # control pipes, write ends
        self._procs: list[Any] = []
        _POOLS = pools
        try:
            for index in range(workers):
                read_fd, write_fd = os.pipe()
                job_read, job_write = os.pipe()
                with contextlib.suppress(OSError):
                    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
                inherited = [*self._fds, *self._jobs, read_fd, job_write]
                proc = ctx.Process(target=_worker, args=(index, job_read, write_fd, inherited, self._errors),
                                   daemon=True)
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

    def begin(self, plan: Plan) -> None:
        """Hand the plan to the workers: they start rendering their buckets."""
        self.skeleton = plan.skeleton
        job = pickle.dumps(_Job(plan.skeleton, plan.render_inputs.save(plan.skeleton.directory), self.workers,
                                self.chunk_rows))
        for fd in self._jobs:
            _write_all(fd, job)
            os.close(fd)
        self._jobs = []

    def _failure(self, worker: int) -> LoadError:
        proc = self._procs[worker]
        proc.join(timeout=1)
        with contextlib.suppress(queue.Empty):
            return LoadError(f"render worker failed: {self._errors.get(timeout=1)[0]}")
        return LoadError(f"render worker {proc.pid} exited with code {proc.exitcode} before sending all rows")

    def pieces(self) -> Iterator[tuple[int, bytearray]]:
        """(rows, bytes) of every message piece, in id order."""
        skeleton = self.skeleton
        assert skeleton is not None, "begin(plan) first"
        for bucket in range(skeleton.buckets):
            worker = bucket % len(self._procs)
            fd = self._fds[worker]
            for lo, hi in _pieces(skeleton, bucket, self.chunk_rows):
                waited_since = time.monotonic()

                def check(worker: int = worker, since: float = waited_since) -> None:
                    if self._procs[worker].exitcode not in (None, 0):
                        raise self._failure(worker)
                    if time.monotonic() - since > STALL_SECONDS:
                        raise LoadError(
                            f"render worker {self._procs[worker].pid} sent nothing for {STALL_SECONDS:.0f} s; "
                            "the seed was abandoned (nothing is cached); run again, or with --workers 1"
                        )

                try:
                    size = _HEADER.unpack(_read_exactly(fd, _HEADER.size, check))[0]
                    data = _read_exactly(fd, size, check)
                except EOFError:
                    raise self._failure(worker) from None
                yield hi - lo, data

    def close(self) -> None:
        for fd in [*self._jobs, *self._fds]:
            os.close(fd)  # a waiting worker reads end of file; a writing one gets EPIPE: both exit
        self._jobs, self._fds = [], []
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
