"""The live load of a rehearsal: the canonical history reads and appends from several client
processes, open loop at a fixed total rate, for as long as the rehearsal needs it.

What runs is a tuple of ``AppOperation``s: today ``canonical_operations`` builds them from the existing
load machinery (``chatbench.benchmarks.loadtest``): its operations, their weights (``--mix``) and the
parameter pools built from the seeded data. The seam for the application's own queries
(``chatbench.schema.appqueries``, issue 24) is there: a function returning more ``AppOperation``s
(their SQL with ``%(name)s`` placeholders, whether they read or append, a weight and parameter sets
drawn from the seeded data), added to the tuple ``stage.rehearse_size`` passes to ``app_load`` and
``applocks.measure_app_locks``; the clients, the lock measurement and the reports take any operation.
What differs from ``chatbench load`` is the timing: a rehearsal does not know in advance how long the
migration runs, so clients run until stopped, and each request is kept with its time so that the
report can say which requests ran before, during and after each statement.
"""

from __future__ import annotations

import contextlib
import pickle
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from chatbench.benchmarks.loadtest.mix import OPERATIONS, parameter_pools
from chatbench.errors import ChatbenchError
from chatbench.loadgen.result import SeedParameters
from chatbench.rehearse.appclient import READY, ClientTask
from chatbench.rehearse.result import Access, AppWindow, Latency
from chatbench.schema.queries import QUERIES_BY_NAME

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Request:
    operation: str
    access: Access
    intended: float  # time.monotonic()
    done: float
    ok: bool

    @property
    def latency_ms(self) -> float:
        return (self.done - self.intended) * 1000.0


@dataclass(frozen=True)
class AppRequests:
    requests: tuple[Request, ...]
    errors: tuple[str, ...]
    description: str

    def window(self, start: float, end: float) -> AppWindow:
        """Latency of the requests due in [start, end) (from when they were due: a queue counts), and the
        errors that happened in it (when they failed: a request due before the migration that fails once it
        started is the migration's), reads and appends apart."""
        return AppWindow(*(
            self._latency([r for r in self.requests if r.access == access and start <= r.intended < end],
                          sum(1 for r in self.requests if r.access == access and not r.ok and start <= r.done < end))
            for access in ("reads", "appends")))

    @staticmethod
    def _latency(requests: list[Request], errors: int) -> Latency:
        ok = np.array([r.latency_ms for r in requests if r.ok])
        if not len(ok):
            return Latency(len(requests), errors)
        p50, p99 = np.percentile(ok, [50, 99])
        return Latency(len(requests), errors, float(p50), float(p99), float(ok.max()))


@dataclass(frozen=True)
class AppOperation:
    """One kind of request of the live load."""

    name: str
    sql: str  # with %(name)s placeholders
    returns_rows: bool
    access: Access  # reads | appends: which budget its blocking counts against
    weight: float  # its share of the requests
    params: tuple[Mapping[str, Any], ...]  # parameter sets, one drawn per request


def access_of(operation: str) -> Access:
    return "appends" if QUERIES_BY_NAME[OPERATIONS[operation].query].kind == "write" else "reads"


def canonical_operations(conninfo: str, params: SeedParameters,
                         weights: Mapping[str, float]) -> tuple[AppOperation, ...]:
    """The canonical history reads and appends of ``--mix``, their parameters drawn from the seeded data."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        pools = parameter_pools(conn, params, weights)
    return tuple(AppOperation(name, QUERIES_BY_NAME[OPERATIONS[name].query].sql(),
                              QUERIES_BY_NAME[OPERATIONS[name].query].returns_rows, access_of(name), weight,
                              tuple(pools[name])) for name, weight in weights.items() if weight > 0)


class AppLoad:
    """Client processes running against one database until ``stop()``; ``close()`` always ends them
    (stop, then kill what does not stop)."""

    def __init__(self, conninfo: str, operations: Sequence[AppOperation], *, clients: int, rate_per_s: float,
                 seed: int) -> None:
        self.operations = {o.name: o for o in operations if o.weight > 0}
        self.description = (f"{clients} client process(es), open loop at {rate_per_s:g} requests/s in total, mix "
                            + ", ".join(f"{n}={o.weight:g}" for n, o in self.operations.items()))
        self._tasks = [
            ClientTask(index, conninfo, {n: o.sql for n, o in self.operations.items()},
                       {n: o.returns_rows for n, o in self.operations.items()},
                       {n: o.weight for n, o in self.operations.items()},
                       {n: [dict(p) for p in o.params] for n, o in self.operations.items()}, rate_per_s / clients,
                       seed)
            for index in range(clients)
        ]
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for task in self._tasks:
            process = subprocess.Popen([sys.executable, "-m", "chatbench.rehearse.appclient"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, bufsize=0)
            self._processes.append(process)
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(task))
            process.stdin.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        for index, process in enumerate(self._processes):
            assert process.stdout is not None
            while not select.select([process.stdout], [], [], 0.05)[0]:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise ChatbenchError(f"app load: client {index} did not connect (exit code {process.poll()}); "
                                         "see its error above")
            if process.stdout.read(1) != READY:
                raise ChatbenchError(f"app load: client {index} failed before it was ready; see its error above")

    def stop(self) -> AppRequests:
        """Stop the clients and collect every request they made."""
        for process in self._processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGUSR1)
        requests: list[Request] = []
        errors: list[str] = []
        for index, process in enumerate(self._processes):
            try:
                names, events, samples = pickle.loads(_read_all(process, time.monotonic() + STOP_TIMEOUT_S))
            except (TimeoutError, pickle.UnpicklingError, EOFError, ValueError):
                raise ChatbenchError(f"app load: client {index} did not hand back its requests within "
                                     f"{STOP_TIMEOUT_S:g} s") from None
            errors += samples
            for operation, intended, _sent, done, ok in events:
                name = names[operation]
                requests.append(Request(name, self.operations[name].access, intended, done, ok))
        requests.sort(key=lambda r: r.intended)
        return AppRequests(tuple(requests), tuple(errors), self.description)

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5.0)


def _read_all(process: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert process.stdout is not None
    chunks: list[bytes] = []
    while True:
        if not select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError
        chunk = process.stdout.read(1 << 20)
        if not chunk:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
            return b"".join(chunks)
        chunks.append(chunk)


@contextlib.contextmanager
def app_load(conninfo: str, operations: Sequence[AppOperation], *, clients: int, rate_per_s: float,
             seed: int) -> Iterator[AppLoad]:
    load = AppLoad(conninfo, operations, clients=clients, rate_per_s=rate_per_s, seed=seed)
    try:
        load.start()
        yield load
    finally:
        load.close()


