"""What the stages on one server hand each other: ``Evidence`` (frozen) and the ``StageContext``.

A stage is a function ``(StageContext, Evidence) -> Evidence``: it reads what earlier stages produced
by attribute and returns the evidence with its own part filled in (``dataclasses.replace``). The
pipeline turns the last ``Evidence`` into the report's ``TargetSignoff``; nothing is passed around
as a dictionary.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chatbench.benchmarks.citus import QueryCost
from chatbench.benchmarks.results import BenchmarkRun
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.spec import Spec
from chatbench.provision import Server
from chatbench.provision.choice import ServerChoice
from chatbench.rehearse.result import Rehearsal
from chatbench.reports.compare import Comparison
from chatbench.reports.signoff import ScalingPoint, VerificationEvidence
from chatbench.signoff.display import Display
from chatbench.signoff.options import SignoffOptions
from chatbench.signoff.recorder import Recorder

if TYPE_CHECKING:
    from chatbench.history import HistoryBaseline
    from chatbench.signoff.baseline import Suspect


@dataclass(frozen=True)
class Evidence:
    """Everything the stages on one server have produced so far (None: that stage has not run)."""

    server: Server | None = None  # after the seed: pointed at the seeded database
    label: str | None = None  # e.g. "PostgreSQL 18.1 (local)"
    seed: SeedResult | None = None
    verification: VerificationEvidence = field(default_factory=VerificationEvidence)
    benchmark: BenchmarkRun | None = None
    scaling: tuple[ScalingPoint, ...] = ()
    comparison: Comparison | None = None  # after the confirm stage: its re-measured regressions settled
    suspects: tuple[Suspect, ...] = ()  # what the compare stage leaves the confirm stage to re-measure
    migration: Rehearsal | None = None
    query_costs: tuple[QueryCost, ...] = ()  # the readiness stage's buffers (all shards) and routing per scenario
    halted: str | None = None  # why the remaining stages cannot run, when that is a verdict and not an error

    def need_server(self) -> Server:
        if self.server is None:
            raise RuntimeError("a stage needs the server before the provision stage ran")  # a pipeline bug
        return self.server

    def need_seed(self) -> SeedResult:
        if self.seed is None:
            raise RuntimeError("a stage needs the seeded data before the seed stage ran")
        return self.seed

    def need_benchmark(self) -> BenchmarkRun:
        if self.benchmark is None:
            raise RuntimeError("a stage needs the benchmark run before the benchmarks stage ran")
        return self.benchmark


@dataclass(frozen=True)
class StageContext:
    """What every stage of one server may use: the options, the terminal, the recorder, the cleanup stack."""

    options: SignoffOptions
    choice: ServerChoice  # the server this pipeline runs on
    display: Display
    rec: Recorder
    stack: contextlib.ExitStack
    spec: Spec  # the data spec of ``options.profile``
    baselines: tuple[tuple[str, BenchmarkRun], ...]
    secrets: set[str]  # passwords met on the way (scrubbed from every report file)
    run_dir: Path | None = None  # where a local cluster lives when the size check chose the disk over tmpfs
    scaling_specs: tuple[Spec, ...] = ()  # the data specs of ``options.scaling()``, in that order
    history: HistoryBaseline | None = None  # ``--baseline history:BRANCH``: the branch's stored runs

    @property
    def on_cluster(self) -> bool:
        """This pipeline runs on a Citus cluster (``--backend citus``, or a ``--dsn`` coordinator): its seed stage
        distributes the tables."""
        return self.options.on_cluster(self.choice)
