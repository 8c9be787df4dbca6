"""What ``chatbench bench --fidelity`` found, as a results file carries it (``benchmarks.results``).

Apart from the check itself (``benchmarks.fidelity``, which runs pgbench on a server) so that reading a
results file does not import the check's provisioning and drivers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chatbench import convert
from chatbench.benchmarks.stats import SampleStats

GOAL_RATIO = 1.3


@dataclass(frozen=True)
class FidelityRow:
    scenario: str
    query: str
    harness: SampleStats  # full harness path: execute + fetch + decode
    execute_only: SampleStats  # psycopg execute without decoding rows
    libpq: SampleStats  # libpq exec_prepared from the same process and timer (no psycopg layers)
    pgbench: SampleStats
    rows: int

    @property
    def ratio(self) -> float:
        return self.harness.p50 / self.pgbench.p50

    @property
    def ok(self) -> bool:
        return self.ratio <= GOAL_RATIO


convert.register(FidelityRow, derived=("ratio",), first=("scenario", "query", "rows", "ratio"))


@dataclass(frozen=True)
class FidelityReport:
    rows: tuple[FidelityRow, ...]
    round_trip: SampleStats  # SELECT 1 through the harness path
    pgbench_round_trip: SampleStats  # SELECT 1 through pgbench
    pinning: Mapping[str, Any]
    pgbench_pinned: bool
    pgbench_path: str

    @property
    def goal_ratio(self) -> float:
        return GOAL_RATIO


convert.register(FidelityReport, derived=("goal_ratio",))  # the goal the ratios were held to, in the document
