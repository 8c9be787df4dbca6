"""One load client (a process): its own connection, the weighted mix, HDR histograms per operation.

It imports psycopg and hdrh and nothing of chatbench's stages: a spawned client imports this module afresh,
and the queries' SQL comes compiled in its ``ClientTask`` (the schema package, SQLAlchemy with it, and the
benchmarks took 1.5 s of CPU per client to import).

Closed loop (no ``rate``): operations back to back; each latency is recorded corrected for
coordinated omission with HdrHistogram's ``record_corrected_value`` using the client's warm-up
median as the expected interval (a stall of L ms hides L/interval requests that would have
waited; the correction puts them back). Open loop (``rate`` per client): arrivals follow a Poisson
schedule fixed in advance, and latency is measured from the *intended* start, so a stall delays
every later request's clock and nothing is omitted (the correct way; no synthetic samples needed).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from hdrh.histogram import HdrHistogram

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

HIGHEST_US = 60_000_000  # one minute: anything slower is clipped (and counted)
SIGNIFICANT_DIGITS = 3
MAX_ERROR_SAMPLES = 5


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, SIGNIFICANT_DIGITS)


@dataclass(frozen=True)
class ClientTask:
    """Everything a client process needs (picklable)."""

    index: int
    conninfo: str
    sql: Mapping[str, str]  # operation -> its query's SQL, with %(name)s placeholders
    returns_rows: Mapping[str, bool]  # operation -> whether its query returns rows to fetch
    weights: Mapping[str, float]
    pools: Mapping[str, list[dict[str, Any]]]
    warmup_s: float
    duration_s: float
    rate_per_s: float | None  # this client's arrival rate (open loop) or None (closed loop)
    seed: int


START_TIMEOUT_S = 60.0
"""How long a connected client waits for the others to connect before the load gives up."""

_start: Barrier | None = None
"""The barrier every client of one load passes once connected, so that all start together (set by ``join_start``,
the pool's initializer: a synchronisation primitive reaches a spawned process only at its start)."""


def join_start(barrier: Barrier) -> None:
    """Pool initializer: the clients of this pool start together, when the last one has connected."""
    global _start
    _start = barrier


SPIN_S = 0.0002
"""The last stretch before an arrival is busy-waited: a sleeping client wakes late (scheduler latency,
more on a busy machine) and that lateness would be charged to the server as latency."""


def _us(seconds: float) -> int:
    return min(HIGHEST_US, max(1, int(seconds * 1e6)))


def _wait_until(deadline: float, clock: Any) -> None:
    remaining = deadline - clock()
    if remaining > SPIN_S:
        time.sleep(remaining - SPIN_S)
    while clock() < deadline:
        pass


def run_client(task: ClientTask) -> dict[str, Any]:
    """Run one client; returns encoded histograms, counts, errors and timings (plain data)."""
    rng = random.Random(task.seed * 1000 + task.index)
    names = [n for n in task.weights if task.weights[n] > 0]
    weights = [task.weights[n] for n in names]
    histograms = {n: new_histogram() for n in names}
    raw = {n: new_histogram() for n in names}
    counts = dict.fromkeys(names, 0)
    errors = dict.fromkeys(names, 0)
    samples: list[str] = []
    clock = time.perf_counter

    try:
        conn = psycopg.connect(task.conninfo, autocommit=True, application_name=f"chatbench-load-{task.index}")
    except BaseException:
        if _start is not None:
            _start.abort()  # the others stop waiting for a client that will never come
        raise
    cur = conn.cursor()

    def one(name: str) -> bool:
        nonlocal conn, cur
        try:
            cur.execute(task.sql[name], rng.choice(task.pools[name]), prepare=True)
            if task.returns_rows[name]:
                cur.fetchall()
            return True
        except psycopg.Error as exc:
            errors[name] += 1
            if len(samples) < MAX_ERROR_SAMPLES:
                samples.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
            if conn.closed or conn.broken:
                conn = psycopg.connect(task.conninfo, autocommit=True)
                cur = conn.cursor()
            return False

    try:
        if _start is not None:
            _start.wait(START_TIMEOUT_S)
        # warm-up: prepared statements, caches; its latencies estimate the closed-loop interval
        warm: list[float] = []
        warm_end = clock() + task.warmup_s
        while clock() < warm_end or len(warm) < len(names):
            name = names[len(warm) % len(names)] if len(warm) < len(names) else rng.choices(names, weights)[0]
            start = clock()
            one(name)
            warm.append(clock() - start)
        interval_us = max(1, int(statistics.median(warm) * 1e6))

        begin = clock()
        end = begin + task.duration_s
        intended = begin
        while True:
            if task.rate_per_s is not None:
                intended += rng.expovariate(task.rate_per_s)
                if intended >= end:
                    break
                _wait_until(intended, clock)
                start = intended
            else:
                start = clock()
                if start >= end:
                    break
            name = rng.choices(names, weights)[0]
            sent = clock()
            ok = one(name)
            done = clock()
            if not ok:
                continue
            latency_us = _us(done - start)
            counts[name] += 1
            raw[name].record_value(_us(done - sent))  # what a naive generator reports
            if task.rate_per_s is None:
                histograms[name].record_corrected_value(latency_us, interval_us)
            else:
                histograms[name].record_value(latency_us)
        elapsed = clock() - begin
    finally:
        conn.close()
    return {
        "index": task.index,
        "elapsed_s": elapsed,
        "expected_interval_us": interval_us,
        "counts": counts,
        "errors": errors,
        "error_samples": samples,
        "histograms": {n: h.encode().decode() for n, h in histograms.items()},
        "raw_histograms": {n: h.encode().decode() for n, h in raw.items()},
    }
