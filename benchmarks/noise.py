"""Measuring the noise a benchmark runs in, so a verdict can say whether the measurement supports it.

On a shared machine (a CI runner, a laptop running other things) wall-clock latency mixes what the
query costs with the time client and backend spent waiting for a CPU that another process held.
Three measurements, taken beside the wall-clock samples, tell the two apart:

- **CPU time per round** (``CpuClock``): the client thread's CPU time (``CLOCK_THREAD_CPUTIME_ID``)
  plus the backend's on-CPU time from ``/proc/<backend pid>/schedstat`` (nanoseconds; the kernel's
  ``sum_exec_runtime``, which also leaves out time a hypervisor stole). A round's CPU time is what
  the query cost without queueing for a CPU; a busy machine moves it far less than wall time (here
  a CPU hog on both cores moved p99 wall time 0.2 -> 3.5 ms while p99 CPU time stayed 0.17 ms).
  Available when the backend is a process of this host (``local`` backend); a ``container``
  backend's pid lives in another pid namespace and a ``dsn`` server on another host, so for those the
  client's view is all there is and the calibration probe below stands in for it.
- **A calibration probe** (``calibrate``), interleaved with the scenarios: a fixed round trip
  (``SELECT 1``) and a fixed backend CPU loop (``generate_series``), always the same work, so how much
  their wall time spreads is how much the machine added, and their CPU time between two runs says
  whether the CPU itself got slower.
- **The machine's share of stolen and busy CPU** (``MachineCounters``) from ``/proc/stat`` and the
  load average, recorded for the report.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import TupleRow

CALIBRATION_ROUND_TRIP = "SELECT 1"
CALIBRATION_CPU_LOOP = "SELECT count(*) FROM generate_series(1, 5000)"
"""About 0.3 ms of backend CPU here: long enough to be preempted on a busy core, short enough to repeat."""
CALIBRATION_ROUNDS = 30
"""Rounds of each probe query per probe; a probe runs before every scenario and once at the end."""


class CpuClock:
    """CPU time of this thread plus the server backend's, in nanoseconds (see the module docstring).

    ``available`` is False when the backend is not a process of this host (or its schedstat cannot
    be read); ``why`` then says why, for the report.
    """

    def __init__(self, backend_pid: int | None, backend: str) -> None:
        self._fd: int | None = None
        self.why = ""
        if backend != "local":
            self.why = (f"a {backend} server's backend is not a process of this host (its pid is in another "
                        "pid namespace or on another machine): CPU time not measured")
        elif backend_pid is None:
            self.why = "the backend pid is unknown: CPU time not measured"
        else:
            try:
                self._fd = os.open(f"/proc/{backend_pid}/schedstat", os.O_RDONLY)
                self._backend_ns()
            except (OSError, ValueError, IndexError) as exc:
                self.close()
                self.why = f"/proc/{backend_pid}/schedstat cannot be read ({exc}): CPU time not measured"
        self.source = f"client thread CPU + /proc/{backend_pid}/schedstat of the backend" if self.available else ""

    @property
    def available(self) -> bool:
        return self._fd is not None

    def _backend_ns(self) -> int:
        assert self._fd is not None
        return int(os.pread(self._fd, 128, 0).split()[0])

    def read(self) -> int:
        return time.thread_time_ns() + self._backend_ns()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def timed_with_cpu(work: Callable[[], Any], clock: CpuClock | None, cpu_ms: list[float]) -> Callable[[], Any]:
    """``work`` wrapped to append its CPU time (ms) to ``cpu_ms`` on every call, when the clock is available.

    The reads sit inside the round a timer measures, so a round's CPU time is always part of its
    wall time (two ``pread`` and one clock call: about 2 µs, the same for every round and every run).
    """
    if clock is None or not clock.available:
        return work
    read = clock.read

    def round_with_cpu() -> Any:
        before = read()
        result = work()
        cpu_ms.append((read() - before) / 1e6)
        return result

    return round_with_cpu


@dataclass(frozen=True)
class CalibrationProbe:
    """One interleaved probe: the same fixed work every time, measured as the scenarios are."""

    before: str  # the scenario it ran before ("end": after the last one)
    round_trip_ms: tuple[float, ...]  # wall time of ``SELECT 1``
    cpu_loop_ms: tuple[float, ...]  # wall time of the fixed backend CPU loop
    cpu_loop_cpu_ms: tuple[float, ...] = ()  # its CPU time (empty when not measurable)


def calibrate(conn: psycopg.Connection[TupleRow], clock: CpuClock | None, before: str,
              rounds: int = CALIBRATION_ROUNDS) -> CalibrationProbe:
    """Run the fixed round trip and the fixed CPU loop ``rounds`` times each (prepared, rows fetched)."""
    cursor = conn.cursor()
    trips: list[float] = []
    loops: list[float] = []
    loop_cpu: list[float] = []
    clock_now = time.perf_counter
    for sql, wall in ((CALIBRATION_ROUND_TRIP, trips), (CALIBRATION_CPU_LOOP, loops)):
        cpu = loop_cpu if sql == CALIBRATION_CPU_LOOP else []

        def one(sql: str = sql) -> None:
            cursor.execute(sql, prepare=True)
            cursor.fetchall()

        work = timed_with_cpu(one, clock, cpu)
        work()  # prepare outside the timed rounds
        cpu.clear()
        for _ in range(rounds):
            start = clock_now()
            work()
            wall.append((clock_now() - start) * 1000.0)
    return CalibrationProbe(before, tuple(trips), tuple(loops), tuple(loop_cpu))


@dataclass(frozen=True)
class MachineCounters:
    """``/proc/stat`` CPU counters (all CPUs, clock ticks) at one moment."""

    busy: int
    steal: int
    total: int

    @classmethod
    def read(cls) -> MachineCounters | None:
        try:
            with open("/proc/stat") as handle:
                fields = [int(v) for v in handle.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return cls(user + nice + system + irq + softirq, steal, user + nice + system + idle + iowait + irq + softirq
                   + steal)

    def shares_until(self, later: MachineCounters | None) -> tuple[float | None, float | None]:
        """(busy share, steal share) of all CPUs' time between this reading and ``later``."""
        if later is None or later.total <= self.total:
            return None, None
        span = later.total - self.total
        return round((later.busy - self.busy) / span, 4), round((later.steal - self.steal) / span, 4)


@contextlib.contextmanager
def machine_window() -> Iterator[Callable[[], tuple[float | None, float | None]]]:
    """Yields a function giving (busy share, steal share) of all CPUs since the window opened."""
    start = MachineCounters.read()
    yield lambda: (None, None) if start is None else start.shares_until(MachineCounters.read())


def pooled(probes: Sequence[CalibrationProbe], field: str) -> np.ndarray:
    """Every sample of one probe measurement over all probes (``round_trip_ms``, ``cpu_loop_ms``, ...)."""
    values = [v for probe in probes for v in getattr(probe, field)]
    return np.asarray(values, dtype=float)
