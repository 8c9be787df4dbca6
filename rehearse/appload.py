"""The live load of a rehearsal: the application's reads and writes from several client processes,
open loop at a fixed total rate, for as long as the rehearsal needs it.

What runs is a tuple of ``AppOperation``s. ``canonical_operations`` builds the canonical history reads and
appends from the existing load machinery (``chatbench.benchmarks.loadtest``): its operations, their weights
(``--mix``) and the parameter pools built from the seeded data; on a schema the role map renames, the
canonical queries that read a renamed table or column are left out (``verify.mapped``, as the benchmarks
leave them out). ``app_operations`` adds the application's own queries (``--queries``,
``chatbench.schema.appqueries``): one operation per query, named ``app:QUERY``, its parameter sets the ones
the benchmarks measure and ``verify`` judges (``benchmarks.app_scenarios``: one per scenario role the query
binds), a write run in a transaction that is always rolled back (as the benchmarks run it: the seeded data
stays as seeded, and the write still takes its locks and waits behind the migration's). ``stage.rehearse_size``
passes both to ``app_load`` and ``applocks.measure_app_locks``; the clients, the lock measurement and the
reports take any operation, and a blocked query is named by the operation whose SQL it is
(``AppRequests.operation_of``). What differs from ``chatbench load`` is the timing: a rehearsal does not know
in advance how long the migration runs, so clients run until stopped, and each request is kept with its time
so that the report can say which requests ran before, during and after each statement.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from chatbench.benchmarks.app_scenarios import PREFIX, app_scenarios
from chatbench.benchmarks.loadtest.mix import OPERATIONS, parameter_pools
from chatbench.errors import ChatbenchError
from chatbench.loadgen.result import SeedParameters
from chatbench.rehearse.appclient import ClientTask
from chatbench.rehearse.launcher import ClientLauncher, ClientProcess
from chatbench.rehearse.result import Access, AppWindow, Latency
from chatbench.schema.appqueries import AppQueries
from chatbench.schema.queries import QUERIES_BY_NAME
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.verify.mapped import not_run_on

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Request:
    operation: str
    access: Access
    intended: float  # time.monotonic()
    done: float
    ok: bool
    served: bool = True  # False: due before the load stopped, never sent (``done`` is the stop: a lower bound)

    @property
    def latency_ms(self) -> float:
        return (self.done - self.intended) * 1000.0


@dataclass(frozen=True)
class AppRequests:
    requests: tuple[Request, ...]
    errors: tuple[str, ...]
    description: str
    operations: Mapping[str, AppOperation] = field(default_factory=dict)  # what ran, by name

    def operation_of(self, query: str) -> AppOperation | None:
        """The operation whose SQL ``query`` is, as a session shows it (``pg_stat_activity.query``: ``$n`` for the
        client's placeholders, cut at ``track_activity_query_size``); None for a text no operation has."""
        seen = _text_key(query)
        if not seen:
            return None
        return next((o for o in self.operations.values() if _text_key(o.sql).startswith(seen)), None)

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
        unserved = sum(1 for r in requests if not r.served)
        if not len(ok):
            return Latency(len(requests), errors, unserved=unserved)
        p50, p99 = np.percentile(ok, [50, 99])
        return Latency(len(requests), errors, float(p50), float(p99), float(ok.max()), unserved)


_PLACEHOLDER = re.compile(r"%\(\w+\)s|\$\d+")


def _text_key(sql: str) -> str:
    """A statement's text with its placeholders and spacing made alike: psycopg's ``%(name)s`` and the ``$n`` the
    server shows for them read the same."""
    return " ".join(_PLACEHOLDER.sub("?", sql).replace("%%", "%").split())


@dataclass(frozen=True)
class AppOperation:
    """One kind of request of the live load."""

    name: str
    sql: str  # with %(name)s placeholders
    returns_rows: bool
    access: Access  # reads | appends: which budget its blocking counts against
    weight: float  # its share of the requests
    params: tuple[Mapping[str, Any], ...]  # parameter sets, one drawn per request
    rolled_back: bool = False  # each request in a transaction that is rolled back (the application's writes)


def access_of(operation: str) -> Access:
    return "appends" if QUERIES_BY_NAME[OPERATIONS[operation].query].kind == "write" else "reads"


def canonical_operations(conninfo: str, params: SeedParameters, weights: Mapping[str, float],
                         roles: RoleMap = CANONICAL) -> tuple[AppOperation, ...]:
    """The canonical history reads and appends of ``--mix``, their parameters drawn from the seeded data; those
    whose query reads a table or column ``roles`` renames are left out (``verify.mapped.not_run_on``)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        not_run = not_run_on(conn, roles)
        wanted = {n: w for n, w in weights.items() if w > 0 and OPERATIONS[n].query not in not_run}
        pools = parameter_pools(conn, params, wanted) if wanted else {}
    return tuple(AppOperation(name, QUERIES_BY_NAME[OPERATIONS[name].query].sql(),
                              QUERIES_BY_NAME[OPERATIONS[name].query].returns_rows, access_of(name), weight,
                              tuple(pools[name])) for name, weight in wanted.items())


def app_operations(conninfo: str, params: SeedParameters, queries: AppQueries, *, weight: float,
                   roles: RoleMap = CANONICAL) -> tuple[tuple[AppOperation, ...], dict[str, str]]:
    """(the application's queries as operations of the live load, operation -> why it is not in the load).

    Each query's parameter sets are the ones the benchmarks bind (``benchmarks.app_scenarios.app_scenarios``,
    the sets ``verify`` judges the plans with: one per scenario role), so the load runs what was judged. Each
    operation weighs ``weight``; a write is rolled back every request. A query the data has no instance of, or
    that fails on the schema before the migration (tried once, rolled back), is left out with the reason: the
    rehearsal judges what the migration does to the queries that run."""
    sets: dict[str, list[Mapping[str, Any]]] = {}
    left_out: dict[str, str] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        bound, unbound = app_scenarios(conn, params, queries, roles)
        for scenario in bound:
            sets.setdefault(scenario.app.name, []).append(scenario.bound)
        for name, why in unbound.items():
            left_out[f"{PREFIX}{name.removeprefix(PREFIX).split('/')[0]}"] = why
        for query in queries:
            if query.name not in sets:
                continue
            try:
                with conn.transaction(force_rollback=True):
                    cursor = conn.execute(query.sql, sets[query.name][0])
                    if cursor.description is not None:
                        cursor.fetchall()
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                left_out[f"{PREFIX}{query.name}"] = f"fails before the migration: {type(exc).__name__}: {first}"
                del sets[query.name]
    operations = tuple(AppOperation(f"{PREFIX}{q.name}", q.sql, q.kind == "read",
                                    "reads" if q.kind == "read" else "appends", weight, tuple(sets[q.name]),
                                    rolled_back=q.kind == "write")
                       for q in queries if q.name in sets)
    return operations, left_out


class AppLoad:
    """Client processes running against one database until ``stop()``; ``close()`` always ends them
    (stop, then kill what does not stop). The clients are forked by this process's launcher
    (``rehearse.launcher``)."""

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
                       seed, {n: o.rolled_back for n, o in self.operations.items()})
            for index in range(clients)
        ]
        self._processes: list[ClientProcess] = []

    def start(self) -> None:
        launcher = ClientLauncher.shared()
        for task in self._tasks:
            process = launcher.launch()
            self._processes.append(process)
            process.send(task)
        deadline = time.monotonic() + READY_TIMEOUT_S
        for index, process in enumerate(self._processes):
            ready = process.ready(deadline)
            if ready is None:
                raise ChatbenchError(f"app load: client {index} did not connect within {READY_TIMEOUT_S:g} s")
            if not ready:
                raise ChatbenchError(f"app load: client {index} failed before it was ready; see its error above")

    def stop(self) -> AppRequests:
        """Stop the clients and collect every request they made."""
        for process in self._processes:
            process.stop()
        requests: list[Request] = []
        errors: list[str] = []
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for index, process in enumerate(self._processes):
            try:
                names, events, samples = process.requests(deadline)
            except (OSError, pickle.UnpicklingError, EOFError, ValueError):  # OSError: TimeoutError too
                raise ChatbenchError(f"app load: client {index} did not hand back its requests within "
                                     f"{STOP_TIMEOUT_S:g} s") from None
            errors += samples
            for operation, intended, _sent, done, ok, served in events:
                name = names[operation]
                requests.append(Request(name, self.operations[name].access, intended, done, ok, served))
        requests.sort(key=lambda r: r.intended)
        return AppRequests(tuple(requests), tuple(errors), self.description, dict(self.operations))

    def close(self) -> None:
        for process in self._processes:
            process.close()
        self._processes.clear()


@contextlib.contextmanager
def app_load(conninfo: str, operations: Sequence[AppOperation], *, clients: int, rate_per_s: float,
             seed: int) -> Iterator[AppLoad]:
    load = AppLoad(conninfo, operations, clients=clients, rate_per_s=rate_per_s, seed=seed)
    try:
        load.start()
        yield load
    finally:
        load.close()


