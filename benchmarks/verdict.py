"""Judging a latency target so that a busy machine cannot turn it into a false FAIL.

A scenario's p95 (or p99) wall-clock latency is judged with an interval, not a point:

- its **high end** is the percentile's upper confidence bound over the rounds measured
  (``stats.percentile_interval``, 99% asked): the latency is very likely no worse than this here and
  now, and a busy machine only ever adds to it. Too few rounds for the tail asked about (fewer than
  528 for p99) reach less than 99%: the high end is then the slowest round, the target is judged with
  it, and the judgement carries the confidence actually reached, which its line states;
- its **low end** is the floor under what a quiet machine would show: the same percentile's lower
  confidence bound over the rounds' *CPU time* (client + backend, ``noise.CpuClock``), i.e. what the
  query costs without waiting for a CPU. When CPU time cannot be measured (``container``, ``dsn``), the
  floor is the wall-clock bound minus what the machine added to the interleaved calibration round trip
  at that percentile (its p95 or p99 above its median).

PASS when the high end is within the target; FAIL when even the low end is over it; otherwise the
measurement cannot decide: the scenario is measured again (a few times, within a time budget) and if
it still cannot, the target is INCONCLUSIVE, with the noise that hid the answer named. On a quiet
machine the two ends almost meet (CPU time is most of the wall time), so a verdict is reached; a
regression that makes the query itself slower raises the floor too, so it still FAILs on a busy one.
Buffers, rows and plans are deterministic and judged exactly elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chatbench.benchmarks.stats import PERCENTILE_CONFIDENCE, percentile_interval, rounds_needed

Decision = Literal["PASS", "FAIL", "INCONCLUSIVE"]
Floor = Literal["cpu", "round trip"]
LEVELS: Mapping[str, float] = {"p95": 95.0, "p99": 99.0}


@dataclass(frozen=True)
class LatencyJudgement:
    """One latency target judged: the measured value every report shows, the interval that decided, why."""

    statistic: str  # p95 | p99
    target_ms: float
    value_ms: float  # the wall-clock percentile over the rounds measured (the number reports show)
    low_ms: float  # the interval's low end (see the module docstring; ``floor`` says which kind)
    high_ms: float  # the interval's high end: the wall-clock percentile's upper confidence bound
    decision: Decision
    floor: Floor
    cpu_ms: float | None = None  # the same percentile of the rounds' CPU time (None: not measured)
    added_ms: float | None = None  # what the machine added to the calibration round trip at this percentile
    confidence: float = PERCENTILE_CONFIDENCE  # what the wall-clock interval reaches (exact; below 99%: few rounds)

    def interval(self) -> str:
        return f"{self.low_ms:.3f}–{self.high_ms:.3f} ms"

    def line(self, scenario: str) -> str:
        """One line in user words: the value, the target, and why the decision is what it is."""
        head = f"{scenario}: {self.statistic} {self.value_ms:.3f} ms"
        if self.decision == "PASS":
            return f"{head} ≤ target {self.target_ms:.3f} ms (at most {self.high_ms:.3f} ms at " \
                   f"{self.confidence_text()})"
        if self.decision == "FAIL":
            floor = ("its CPU time alone" if self.floor == "cpu"
                     else "without the noise a fixed round trip showed")
            return f"{head} > target {self.target_ms:.3f} ms (at least {self.low_ms:.3f} ms {floor})"
        short = f" ({self.confidence_text()})" if self.confidence < PERCENTILE_CONFIDENCE else ""
        return f"{head} vs target {self.target_ms:.3f} ms: undecided, {self.noise_text()}{short}"

    def confidence_text(self) -> str:
        """The confidence reached, and when it falls short of the one asked, why and what would reach it."""
        if self.confidence >= PERCENTILE_CONFIDENCE:
            return f"{PERCENTILE_CONFIDENCE:.0%} confidence"
        return (f"{math.floor(self.confidence * 100)}% confidence only: the slowest round is the bound; "
                f"{PERCENTILE_CONFIDENCE:.0%} needs {rounds_needed(LEVELS[self.statistic])} rounds")

    def noise_text(self) -> str:
        """Why the interval is wide: the noise measured, named."""
        if self.floor == "cpu":
            cpu = self.cpu_ms if self.cpu_ms is not None else self.low_ms
            return (f"the query's own CPU time at {self.statistic} is {cpu:.3f} ms and the rest "
                    f"({max(0.0, self.value_ms - cpu):.3f} ms) was time off the CPU (waiting for a CPU other "
                    f"processes held); the interval {self.interval()} holds the target")
        added = self.added_ms if self.added_ms is not None else 0.0
        return (f"the machine added {added:.3f} ms to a fixed round trip at {self.statistic}; "
                f"the interval {self.interval()} holds the target")


def judge_target(
    statistic: str,
    target_ms: float,
    wall_ms: Sequence[float],
    cpu_ms: Sequence[float] = (),
    added_ms: Mapping[str, float] | None = None,
) -> LatencyJudgement:
    """Judge one latency target (``statistic`` is p95 or p99) from a scenario's rounds.

    ``cpu_ms`` are the rounds' CPU times (aligned with ``wall_ms``; empty when not measurable);
    ``added_ms`` is what the machine added to the calibration round trip per percentile (used as the
    floor's correction when there is no CPU time).
    """
    percent = LEVELS[statistic]
    wall = np.asarray(wall_ms, dtype=float)
    value = float(np.percentile(wall, percent))
    interval = percentile_interval(wall, percent)
    wall_low, high = interval
    cpu_value: float | None = None
    added: float | None = None
    if len(cpu_ms) == len(wall_ms) and len(cpu_ms) > 0:
        floor: Floor = "cpu"
        cpu = np.asarray(cpu_ms, dtype=float)
        cpu_value = float(np.percentile(cpu, percent))
        low = min(percentile_interval(cpu, percent).low, wall_low)
    else:
        floor = "round trip"
        added = max(0.0, float((added_ms or {}).get(statistic, 0.0)))
        low = max(0.0, wall_low - added)
    decision: Decision = "PASS" if high <= target_ms else ("FAIL" if low > target_ms else "INCONCLUSIVE")
    return LatencyJudgement(statistic, target_ms, value, low, high, decision, floor, cpu_value, added,
                            interval.confidence)


def round_trip_added_ms(round_trips_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """What the machine added to a fixed round trip at each judged percentile: that percentile minus the median."""
    data = np.asarray(round_trips_ms, dtype=float)
    if data.size == 0:
        return {}
    median = float(np.median(data))
    return {name: max(0.0, float(np.percentile(data, q)) - median) for name, q in LEVELS.items()}
