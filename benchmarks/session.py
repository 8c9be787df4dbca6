"""One measuring session over a seeded database: connection, pinning, targets, collected results.

``chatbench bench`` and the sign-off's benchmark stage enter it by one function, ``measure_scenarios``
(open the session, measure each scenario or record why not, build the run); the pytest suite
(``benchmarks/conftest.py``, one test per scenario) and the fidelity check open it with ``open_session``.
All measure through ``BenchSession.measure``, so every number is taken the same way: a prepared
statement on one pinned connection, parameters rotated, warm-up rounds discarded, every timed
round kept as a raw sample.
"""

from __future__ import annotations

import gc
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from chatbench.benchmarks import scenarios as sc
from chatbench.benchmarks.app_scenarios import app_scenarios
from chatbench.benchmarks.environment import fingerprint
from chatbench.benchmarks.noise import CalibrationProbe, CpuClock, calibrate, machine_window, pooled, timed_with_cpu
from chatbench.benchmarks.pinning import PinMode, PinningResult, pin, restore_client
from chatbench.benchmarks.results import (
    BenchmarkRun,
    BufferUsage,
    DepthCurve,
    EnvironmentFingerprint,
    MachineLoad,
    RunSettings,
    ScenarioResult,
    params_version,
)
from chatbench.benchmarks.stats import fit_growth
from chatbench.benchmarks.targets import Targets
from chatbench.benchmarks.verdict import round_trip_added_ms
from chatbench.convert import to_plain
from chatbench.errors import redact
from chatbench.loadgen.result import SeedResult
from chatbench.output import Stage
from chatbench.provision import Server
from chatbench.schema.appqueries import AppQueries
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.verify.citus import is_citus
from chatbench.verify.mapped import not_run_on

ROUNDS = {"smoke": (300, 30), "ci": (2000, 200), "release": (5000, 300), "scale": (5000, 300)}
"""(timed rounds, warm-up rounds) per profile. 2000 rounds put ~100 samples above p95 and 20
above p99, enough for a p99 that is more than "the slowest round"; smoke only proves the path."""


def rounds_for(profile: str) -> tuple[int, int]:
    return ROUNDS.get(profile, ROUNDS["ci"])


DEFAULT_RETRIES = 2
DEFAULT_RETRY_BUDGET_S = 30.0
"""Re-measurement of undecided scenarios: a few more measurements each, at most this long per run (the
``retries`` and ``retry_budget`` settings, declared in ``chatbench.settings``, set them for a command)."""

TimedRounds = Callable[[Callable[[], Any], int, int], list[float]]
"""(target, rounds, warmup) -> raw samples in seconds: pytest-benchmark's pedantic or ``time_rounds``."""


MIN_BUDGET_ROUNDS = 20
"""Rounds ``time_rounds`` always times under a budget, so the statistics (and a comparison's tests)
have samples to work on even when every round is slow."""


def time_rounds(target: Callable[[], Any], rounds: int, warmup: int, budget_s: float | None = None) -> list[float]:
    """Plain timing loop (perf_counter around each call), used outside pytest (fidelity, sign-off).

    With ``budget_s``, the loop is cut after that many seconds of timed rounds (at least
    ``MIN_BUDGET_ROUNDS``), and warm-up after a tenth of it (at least one round): a slow query
    (a schema that lost its index) then costs seconds, not half an hour. None times every round.
    """
    clock = time.perf_counter
    deadline = clock() + budget_s / 10 if budget_s is not None else None
    for done in range(warmup):
        if deadline is not None and done and clock() > deadline:
            break
        target()
    samples = []
    deadline = clock() + budget_s if budget_s is not None else None
    for _ in range(rounds):
        start = clock()
        target()
        end = clock()
        samples.append(end - start)
        if deadline is not None and end > deadline and len(samples) >= MIN_BUDGET_ROUNDS:
            break
    return samples


@dataclass
class BenchSession:
    """State shared by every benchmark of a run. Not frozen: it collects results as they come."""

    server: Server
    seed: SeedResult
    profile: str
    targets: Targets
    conn: psycopg.Connection[TupleRow]
    pinning: PinningResult
    environment: EnvironmentFingerprint
    rounds: int
    warmup: int
    driver: sc.Driver = "psycopg"
    cpu_clock: CpuClock | None = None
    retries: int = DEFAULT_RETRIES
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S
    results: list[ScenarioResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    load_average: list[tuple[float, float, float]] = field(default_factory=list)
    calibration: list[CalibrationProbe] = field(default_factory=list)
    retry_seconds: float = 0.0
    machine_shares: Callable[[], tuple[float | None, float | None]] = lambda: (None, None)

    def params_for(self, scenario: sc.Scenario) -> list[sc.Params]:
        return scenario.bind(self.conn, self.seed.params)

    def no_instance(self, scenario: sc.Scenario) -> str:
        """Why ``scenario`` is not measured when the seeded data has no instance of it (``skipped``'s reason)."""
        return f"the {self.profile} data has no instance of {scenario.name} ({scenario.doc})"

    def measure(self, scenario: sc.Scenario, timed: TimedRounds = time_rounds,
                params: list[sc.Params] | None = None, retry_timed: TimedRounds | None = None) -> ScenarioResult:
        """Measure one scenario, judge it against its target and keep the result.

        A calibration probe runs first (``noise.calibrate``). When a latency target comes out
        undecided (INCONCLUSIVE), the scenario is measured again with ``retry_timed`` (default: ``timed``;
        pytest-benchmark's timer can be used once per test) up to ``retries`` times while the session's
        ``retry_budget_s`` lasts; the result of the last measurement (the one that decided, if any) is kept.
        """
        params = self.params_for(scenario) if params is None else params
        if not params:
            raise LookupError(f"{scenario.name}: the seeded data has no instance of this scenario")
        query = scenario.statement
        buffers = sc.explain_buffers(self.conn, query, params) if scenario.kind == "read" else None
        self.load_average.append(os.getloadavg())
        self.calibration.append(calibrate(self.conn, self.cpu_clock, scenario.name))
        result = self._measure_once(scenario, params, timed, buffers, attempt=1)
        buffers = result.buffers  # a write's were measured after its first timing: kept for the retries
        attempt = 1
        while (result.verdict == "INCONCLUSIVE" and attempt <= self.retries
               and self.retry_seconds < self.retry_budget_s):
            attempt += 1
            started = time.perf_counter()
            result = self._measure_once(scenario, params, retry_timed or timed, buffers, attempt)
            self.retry_seconds += time.perf_counter() - started
        self.results = [r for r in self.results if r.scenario != scenario.name] + [result]
        return result

    def _measure_once(self, scenario: sc.Scenario, params: list[sc.Params], timed: TimedRounds,
                      buffers: BufferUsage | None, attempt: int) -> ScenarioResult:
        query = scenario.statement
        run = scenario.runner(self.conn, self.driver)
        rotation = sc.rotate(params)
        rows: list[int] = []
        cpu_ms: list[float] = []

        def one_round() -> None:
            rows.append(run(next(rotation)))

        timed_round = timed_with_cpu(one_round, self.cpu_clock, cpu_ms)
        gc.collect()
        gc.disable()
        try:
            samples_s = timed(timed_round, self.rounds, self.warmup)
        finally:
            gc.enable()
        if buffers is None and scenario.kind == "write":  # after the timing, in a rolled-back transaction
            buffers = sc.explain_buffers(self.conn, query, params[:1])
        described = sc.describe_params(params)
        return ScenarioResult.judge(
            scenario=scenario.name,
            query=query.name,
            params_version=params_version(query.sql(), {"scenario": scenario.name, "depth": scenario.depth,
                                                        "params": described, "driver": self.driver},
                                          self.environment.schema_fingerprint),
            samples_ms=[s * 1000.0 for s in samples_s],
            buffers=buffers,
            target=scenario.target_in(self.targets, self.profile),
            extra={"depth": scenario.depth, "doc": scenario.doc, "param_sets": len(params), "driver": self.driver,
                   "rows_per_round": max(rows) if rows else 0, "warmup_rounds": self.warmup,
                   **dict(scenario.extra)},
            cpu_ms=cpu_ms[-len(samples_s):] if len(cpu_ms) >= len(samples_s) else (),
            added_ms=round_trip_added_ms(pooled(self.calibration, "round_trip_ms")),
            attempts=attempt,
        )

    def depth_scaling(self) -> dict[str, DepthCurve]:
        """Growth class of p50 and buffers over page depth, for keyset and OFFSET pages."""
        out: dict[str, DepthCurve] = {}
        for prefix in ("keyset_page", "offset_page"):
            points = []
            for result in self.results:
                if result.scenario.startswith(prefix + "_"):
                    depth = result.extra.get("depth")
                    shown = self._pages_shown(depth)
                    if shown:
                        points.append((shown, result.stats.p50, result.buffers.total if result.buffers else None,
                                       result.stats.iqr))
            if len(points) >= 3:
                xs = [p[0] for p in points]
                latency = fit_growth(xs, [p[1] for p in points], [p[3] for p in points])
                buffers = [p[2] for p in points if p[2] is not None]
                whole = len(buffers) == len(points)
                out[prefix] = DepthCurve(
                    tuple(xs), tuple(p[1] for p in points), latency, tuple(buffers) if whole else (),
                    fit_growth(xs, [float(b) for b in buffers]) if whole else None)
        return out

    def _pages_shown(self, depth: Any) -> int | None:
        if isinstance(depth, int):
            return depth
        if depth == "last" and self.seed.params.whales:
            sizes = [w.messages for w in self.seed.params.whales[:sc.MAX_PARAM_SETS] if w.messages > sc.PAGE]
            return round(sum((n - 1) // sc.PAGE for n in sizes) / len(sizes)) if sizes else None
        return None

    def to_run(self) -> BenchmarkRun:
        busy, steal = self.machine_shares()
        order = {s.name: i for i, s in enumerate(sc.SCENARIOS)}
        results = tuple(sorted(self.results, key=lambda r: order.get(r.scenario, len(order))))
        return BenchmarkRun(kind="bench", run_id=self.run_id, created_at=datetime.now(UTC).isoformat(),
                            environment=self.environment, scenarios=results,
                            settings=RunSettings(self.rounds, self.warmup, self.driver, self.targets.source),
                            skipped=dict(self.skipped), depth_scaling=self.depth_scaling(),
                            seed_from_cache=self.seed.from_cache,
                            machine=MachineLoad(os.cpu_count() or 1,
                                                tuple(round(a[0], 2) for a in self.load_average),
                                                busy_share=busy, steal_share=steal),
                            calibration=tuple(self.calibration),
                            cpu_time=self.cpu_clock.source or self.cpu_clock.why if self.cpu_clock else "")


CITUS_REFUSALS: tuple[type[psycopg.Error], ...] = (psycopg.errors.FeatureNotSupported, psycopg.errors.InternalError_)
"""How Citus refuses a statement it cannot distribute (``INSERT ... SELECT`` with bound parameters, or its
``EXPLAIN ANALYZE``): on a cluster the scenario is recorded as not measured, not as a broken run."""


def _refusal(exc: Exception) -> str:
    """Why a scenario the server refused is not measured, in one line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"the server refuses it: {type(exc).__name__}: {first}".rstrip(": "))


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Move every object alive now out of the collector's reach for the block (``gc.freeze``), then back.

    Each measurement starts from a collection (``BenchSession._measure_once``) so no collection lands in
    its timed rounds. A full collection walks every object alive: with SQLAlchemy, numpy, scipy and
    matplotlib loaded that is about 0.1 s per scenario, a third of a smoke sign-off's benchmark stage,
    and in a forked process it writes to, and so copies, every page that holds an object. What was
    alive before the session (modules, the caller's objects) is not the garbage a measurement makes;
    frozen, it is skipped, and each collection walks only what the session made. Something that froze
    objects of its own before (a preforking server) keeps them frozen: then this does nothing.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def open_session(server: Server, seed: SeedResult, *, profile: str, targets: Targets,
                 pin_mode: PinMode = "same-core", rounds: int | None = None,
                 warmup: int | None = None, driver: sc.Driver = "psycopg", retries: int = DEFAULT_RETRIES,
                 retry_budget_s: float = DEFAULT_RETRY_BUDGET_S) -> Iterator[BenchSession]:
    """Connect to the seeded database, pin, fingerprint; restore this process's CPU affinity after."""
    default_rounds, default_warmup = rounds_for(profile)
    saved_affinity = os.sched_getaffinity(0)
    with (psycopg.connect(server.conninfo(), autocommit=True, application_name="chatbench-bench")
          as conn,
          machine_window() as shares,
          long_lived_objects_frozen()):
        placement = pin(conn, backend=server.backend, mode=pin_mode)
        clock = CpuClock(placement.server_pid, server.backend)
        session = BenchSession(
            server=server, seed=seed, profile=profile, targets=targets, conn=conn, pinning=placement,
            environment=fingerprint(server, seed, to_plain(placement)),
            rounds=default_rounds if rounds is None else rounds,
            warmup=default_warmup if warmup is None else warmup, driver=driver, cpu_clock=clock,
            retries=retries, retry_budget_s=retry_budget_s, machine_shares=shares)
        try:
            yield session
            if session.results:  # a last probe after the last scenario: the noise over the whole run
                session.calibration.append(calibrate(conn, clock, "end"))
        finally:
            clock.close()
            restore_client(saved_affinity)


RoundsOf = Callable[[sc.Scenario], tuple[int, int]]
"""scenario -> (timed rounds, warm-up rounds): a caller's rounds for one scenario (the sign-off measures
the OFFSET contrast scenarios with fewer)."""


@dataclass(frozen=True)
class MeasuredRun:
    """What ``measure_scenarios`` hands back: the run, and where client and backend ran (for the report's title).

    ``not_run``: the canonical scenarios not run because the role map renames what their query reads
    (scenario -> why, ``verify.mapped``); they are in the run's ``skipped`` too, so a reader of the run sees
    them, and a caller that reports them as skipped by design (the sign-off) can tell them from a scenario
    the data had no instance of."""

    run: BenchmarkRun
    pinning: PinningResult
    not_run: Mapping[str, str] = field(default_factory=dict)


def measure_scenarios(server: Server, seed: SeedResult, *, profile: str, targets: Targets,
                      scenarios: Sequence[sc.Scenario] = sc.SCENARIOS, pin_mode: PinMode = "same-core",
                      rounds: int | None = None, warmup: int | None = None, driver: sc.Driver = "psycopg",
                      retries: int = DEFAULT_RETRIES, retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
                      timed: TimedRounds = time_rounds, rounds_of: RoundsOf | None = None,
                      progress: Stage | None = None, app: AppQueries | None = None,
                      roles: RoleMap = CANONICAL, select: Callable[[str], bool] | None = None) -> MeasuredRun:
    """The one path from a command (``chatbench bench``, the sign-off) into the benchmark session.

    Opens the session on the seeded database, measures ``scenarios`` in order through
    ``BenchSession.measure`` (a scenario the data has no instance of is recorded in ``skipped`` with
    the reason, not measured; so is one a Citus cluster refuses, ``CITUS_REFUSALS``), and builds the run
    once the session closed, so its noise record holds the last calibration probe. ``rounds_of``: rounds
    per scenario (None: the session's for all); ``progress``: an open output stage, told each scenario
    and counted on.

    ``app``: the application's queries (``--queries``), bound once the session is open
    (``benchmarks.app_scenarios``: one scenario per query and role, ``app:QUERY/ROLE``, the tables named
    through ``roles``) and measured after the canonical reads, before the canonical writes commit their
    rows; a query the server refuses is recorded in ``skipped``, not a broken run. A canonical scenario
    whose query reads a table or column ``roles`` renames is not run (``verify.mapped``: the canonical
    queries are the reference for the canonical names): ``skipped`` and ``MeasuredRun.not_run`` say why.
    ``select``: which application scenarios to measure, by name (``chatbench bench -k``, the predicate the
    caller chose ``scenarios`` with): they are named only once bound, so they are chosen here; None: all.
    """
    with open_session(server, seed, profile=profile, targets=targets, pin_mode=pin_mode, rounds=rounds,
                      warmup=warmup, driver=driver, retries=retries, retry_budget_s=retry_budget_s) as session:
        refused = CITUS_REFUSALS if is_citus(session.conn) else ()  # a cluster, whatever backend brought it
        default = (session.rounds, session.warmup)
        mapped = not_run_on(session.conn, roles)  # canonical query -> why it is not run on these names
        not_run = {s.name: mapped[s.query] for s in scenarios if s.query in mapped}
        session.skipped.update(not_run)
        queue: list[sc.Scenario] = [s for s in scenarios if s.name not in not_run]
        if app is not None:
            bound, unbound = app_scenarios(session.conn, seed.params, app, roles)
            if select is not None:
                bound = tuple(s for s in bound if select(s.name))
                unbound = {name: why for name, why in unbound.items() if select(name)}
            session.skipped.update(unbound)
            writes_at = next((i for i, s in enumerate(queue) if s.kind == "write"), len(queue))
            queue[writes_at:writes_at] = bound
        if progress is not None and (app is not None or not_run):
            progress.reset(len(queue), "scenarios")
        for scenario in queue:
            if progress is not None:
                progress.step(scenario.name)
            params = session.params_for(scenario)
            own = "app" in scenario.statement.tags
            if params:
                session.rounds, session.warmup = default if rounds_of is None else rounds_of(scenario)
                try:
                    session.measure(scenario, timed=timed, params=params)
                except refused as exc:  # the sign-off's readiness stage fails it, saying why
                    session.skipped[scenario.name] = _refusal(exc)
                except psycopg.Error as exc:
                    if not own:
                        raise
                    session.skipped[scenario.name] = _refusal(exc)  # the application's query: its fault, named
            else:
                session.skipped[scenario.name] = session.no_instance(scenario)
            if progress is not None:
                progress.advance()
        session.rounds, session.warmup = default  # the run's settings record the rounds asked
    return MeasuredRun(session.to_run(), session.pinning, not_run)
