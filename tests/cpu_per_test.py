"""A pytest plugin that measures the suite (not a test): each test's wall time and the machine's CPU while it ran.

``PYTHONPATH=tests pytest tests -p cpu_per_test`` writes one JSON line per test to ``$CHATBENCH_CPU_PER_TEST``
(default ``cpu-per-test.jsonl``): ``id``; ``worker`` (pytest-xdist's, ``main`` without ``-n``); ``start``
(``time.time()``) and ``wall`` seconds; ``busy`` and ``idle`` (with iowait) core-seconds of the whole machine from
``/proc/stat`` (the servers and every process a test starts are in ``busy``); ``own``, this process's CPU and its
waited-for children's. Run with no ``-n`` for each test's work (with workers, the machine's busy time is theirs
together); with ``-n``, ``worker``, ``start`` and ``wall`` give the run's timeline (when a worker idled). The
lines are appended: workers write whole lines. docs/design.md's facts on where the suite's work goes were
measured with it, by file.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbench.benchmarks.noise import MachineCounters

OUTPUT = Path(os.environ.get("CHATBENCH_CPU_PER_TEST", "cpu-per-test.jsonl"))
TICKS = os.sysconf("SC_CLK_TCK")


def _machine() -> tuple[float, float]:
    """Busy and not-busy (idle, iowait) core-seconds since boot, from the counters the benchmarks record."""
    counters = MachineCounters.read()
    assert counters is not None, "no /proc/stat: this plugin measures Linux machines only"
    return counters.busy / TICKS, (counters.total - counters.busy - counters.steal) / TICKS


def _own() -> float:
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    busy, idle = _machine()
    own, started, at = _own(), time.monotonic(), time.time()
    yield
    busy_after, idle_after = _machine()
    row = {"id": item.nodeid, "worker": getattr(item.config, "workerinput", {}).get("workerid", "main"), "start": at,
           "wall": time.monotonic() - started, "busy": busy_after - busy, "idle": idle_after - idle,
           "own": _own() - own}
    with OUTPUT.open("a") as out:
        out.write(json.dumps(row) + "\n")
