"""The pre-release sign-off pipeline: every stage, in order, on one or more servers, then the reports.

provision → schema (canonical, or the application's own ``--schema-from``) → drift → seed (cache)
→ integrity → health + plan contracts → benchmarks vs targets → scaling by data size → optional load
→ optional baseline comparison; teardown always. Each stage is timed and recorded as a
``StageTiming``; what it judged becomes ``CheckItem``s; the whole is a frozen ``reports.signoff``
model that the renderers turn into files. This module wires stages together and measures nothing
itself: benchmarks go through ``benchmarks.session.BenchSession.measure``, checks through
``schema.verify.verify``, data through ``loadgen``.

A stage that cannot run (a ChatbenchError, a database error, a bug) stops that server's pipeline:
the remaining stages are recorded as skipped and the verdict is ERROR (exit 2); a stage that ran
and found problems is ``failed`` and the pipeline goes on, so one run lists every failing item.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from chatbench.errors import ChatbenchError, ConfigError, redact
from chatbench.provision import Server, provision, resolve_backend
from chatbench.provision.databases import temporary_database
from loadgen.result import SeedResult
from reports.compare import Comparison, Thresholds, compare_runs
from reports.results import BenchmarkRun
from reports.signoff import CheckItem, ScalingPoint, Severity, Signoff, StageStatus, StageTiming, TargetSignoff

PROFILE_ORDER = ("smoke", "ci", "release", "scale")
SIGNOFF_ROUNDS = (1000, 100)
"""Default (timed, warm-up) rounds per scenario in a sign-off, capped by the profile's own default.

Why fewer than ``chatbench bench`` at release (5000): the sign-off must finish in about a minute at
1M messages; 1000 rounds still put 50 samples above p95 and 10 above p99, and the comparison with a
baseline works on the raw samples, whose count its statistics take into account."""
CONTRAST_ROUNDS = (200, 20)
"""Rounds for the contrast scenarios (OFFSET pages, tagged ``contrast``): they are expected to be slow
(20 ms for the last page of a 20k-message whale) and only show the growth with depth; 200 rounds do
that, 1000 would cost the sign-off 20 s."""
SCENARIO_BUDGET_S = 3.0
"""Seconds of timed rounds one scenario may take in a sign-off (after at least ``MIN_BUDGET_ROUNDS``).

Why: a schema that lost its history index turns a 0.2 ms page into a 100 ms scan; 1000 rounds of
each would make the FAIL take half an hour. The budget keeps a broken schema's sign-off to about a
minute; the rounds actually taken are in every result (``stats.rounds``)."""
MIN_BUDGET_ROUNDS = 20
SCALING_SCENARIOS = ("latest_page", "keyset_page_20", "offset_page_20", "conversation_list_first", "message_count")
"""Measured again on smaller databases for the scaling plot: the central reads and the OFFSET contrast."""


@dataclass(frozen=True)
class ServerChoice:
    """One server to sign off on: a backend plus the binaries or image that pick its version."""

    backend: str
    pg_bin: str | None = None
    image: str | None = None
    dsn: str | None = None
    version_hint: str | None = None  # what --pg-versions asked for


@dataclass(frozen=True)
class SignoffOptions:
    """Everything the pipeline needs, resolved (the command turns arguments into this)."""

    servers: tuple[ServerChoice, ...]
    profile: str = "release"
    seed: int = 1
    out: Path = Path("out")
    baseline: Path | None = None
    schema_from: Path | None = None
    schema_from_cmd: str | None = None
    load: bool = False
    load_clients: int = 2
    load_seconds: float = 5.0
    rounds: int | None = None  # None: the profile's default (benchmarks.session.ROUNDS)
    warmup: int | None = None
    targets_file: Path | None = None
    pin_mode: str = "same-core"
    use_cache: bool = True
    scaling_profiles: tuple[str, ...] | None = None  # None: every profile smaller than ``profile``
    scaling_rounds: int = 300
    scenario_budget_s: float | None = SCENARIO_BUDGET_S  # None: every round, however long
    use_dsn_database: bool = False
    allow_destructive: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    command: str = ""

    @property
    def schema_source(self) -> str:
        if self.schema_from is not None:
            return f"--schema-from {self.schema_from}"
        if self.schema_from_cmd is not None:
            return f"--schema-from-cmd {self.schema_from_cmd!r}"
        return "canonical"

    def scaling(self) -> tuple[str, ...]:
        if self.scaling_profiles is not None:
            return tuple(p for p in self.scaling_profiles if p != self.profile)
        if self.profile not in PROFILE_ORDER:
            return ()
        smaller = PROFILE_ORDER[: PROFILE_ORDER.index(self.profile)]
        return tuple(p for p in smaller if p != "scale")


# --- choosing servers --------------------------------------------------------------------------------


def choose_servers(
    backend: str,
    *,
    pg_bins: Sequence[str] = (),
    images: Sequence[str] = (),
    pg_versions: Sequence[str] = (),
    dsn: str | None = None,
    announce: Callable[[str], None] = lambda _m: None,
) -> tuple[ServerChoice, ...]:
    """The servers to run on: one per --pg-bin / --image / --pg-versions entry, or the default one."""
    if pg_versions and (pg_bins or images):
        raise ConfigError(
            "--pg-versions picks the binaries or images itself; give it alone, "
            "or list servers with repeated --pg-bin / --image instead"
        )
    if dsn is not None and (pg_versions or len(pg_bins) > 0 or len(images) > 0):
        raise ConfigError(
            "--dsn names one existing server; it cannot be combined with --pg-versions, --pg-bin or --image"
        )
    chosen = resolve_backend(backend, dsn=dsn, announce=announce)
    if chosen == "dsn":
        return (ServerChoice("dsn", dsn=dsn),)
    if pg_versions:
        return tuple(_version_choice(chosen, v.strip()) for v in pg_versions if v.strip())
    choices = [ServerChoice("local", pg_bin=b) for b in pg_bins] + [ServerChoice("container", image=i) for i in images]
    if pg_bins and images:
        return tuple(choices)
    if pg_bins:
        return tuple(replace(c, backend="local") for c in choices) if chosen != "container" else tuple(choices)
    if images:
        return tuple(choices)
    return (ServerChoice(chosen),)


def _version_choice(backend: str, version: str) -> ServerChoice:
    if not version.isdigit():
        raise ConfigError(f"--pg-versions {version!r}: give major versions, e.g. --pg-versions 15,18")
    if backend == "container":
        return ServerChoice("container", image=f"postgres:{version}", version_hint=version)
    from chatbench.provision.binaries import embedded_bin_dir, resolve_binaries

    probed = []
    embedded = embedded_bin_dir()
    for candidate in (embedded, Path(f"/usr/lib/postgresql/{version}/bin")):
        probed.append(str(candidate))
        if (candidate / "postgres").is_file():
            try:
                found = resolve_binaries(candidate)
            except ChatbenchError:
                continue
            if str(found.major) == version:
                return ServerChoice(
                    "local", pg_bin=None if candidate == embedded else str(candidate), version_hint=version
                )
    raise ConfigError(
        f"--pg-versions {version}: no PostgreSQL {version} binaries found (probed {', '.join(probed)}); "
        f"install postgresql-{version} or use --backend container"
    )


# --- progress and recording -------------------------------------------------------------------------


class Display:
    """The terminal side: one line per finished stage, spinners and bars while stages run."""

    ICON: Mapping[str, str] = {
        "ok": "[green]✓[/green]",
        "failed": "[red]✗[/red]",
        "error": "[yellow]![/yellow]",
        "skipped": "[dim]-[/dim]",
    }

    def __init__(self, console: Console, *, show_label: bool = False) -> None:
        self.console = console
        self.show_label = show_label

    def note(self, message: str) -> None:
        self.console.print(f"[dim]{message}[/dim]")

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        with self.console.status(message) as status:
            yield lambda text: status.update(f"{message}: {text}")

    def progress(self) -> Progress:
        return Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )

    def stage_done(self, label: str, timing: StageTiming) -> None:
        self.console.print(
            f"  {self.ICON[timing.status]} {timing.stage:<11} {timing.seconds:7.2f} s  "
            f"[dim]{timing.detail}[/dim]" + (f"  [dim]({label})[/dim]" if label and self.show_label else "")
        )


class _StageError(Exception):
    """A stage could not run: the target stops here (recorded; teardown still runs)."""


@dataclass
class _Recorder:
    """Collects one target's stages and checks as they happen (mutable; frozen into TargetSignoff)."""

    display: Display
    label: str = ""
    stages: list[StageTiming] = field(default_factory=list)
    checks: list[CheckItem] = field(default_factory=list)
    error: str | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage. The body may set ``info["detail"]`` and ``info["status"]`` (default ok)."""
        info: dict[str, Any] = {"detail": "", "status": "ok"}
        started = time.perf_counter()
        try:
            yield info
        except (KeyboardInterrupt, SystemExit):
            self.add(StageTiming(name, time.perf_counter() - started, "error", "interrupted"))
            raise
        except Exception as exc:
            raise self.failed(name, time.perf_counter() - started, exc) from exc
        self.add(StageTiming(name, time.perf_counter() - started, info["status"], str(info["detail"])))

    def failed(self, name: str, seconds: float, exc: Exception) -> _StageError:
        """Record a stage that could not run; the caller raises the returned error to stop the target."""
        message = _one_line(exc)
        if not isinstance(exc, ChatbenchError | psycopg.Error):
            self.display.console.print(f"[red]{name}: unexpected error (a bug); traceback follows[/red]")
            self.display.console.print(redact(traceback.format_exc()))
        self.add(StageTiming(name, seconds, "error", message))
        self.error = f"{name}: {message}"
        return _StageError(message)

    def add(self, timing: StageTiming) -> None:
        self.stages.append(timing)
        self.display.stage_done(self.label, timing)

    def check(self, stage: str, name: str, passed: bool, message: str, severity: Severity = "error") -> None:
        self.checks.append(CheckItem(stage, name, passed, redact(message), severity))

    def status_of(self, stage: str) -> StageStatus:
        failing = any(c.stage == stage and c.failing for c in self.checks)
        return "failed" if failing else "ok"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, ChatbenchError):
        text = f"{type(exc).__name__}: {text}"
    return redact(text)


# --- the pipeline ----------------------------------------------------------------------------------------


def planned_stages(options: SignoffOptions) -> tuple[str, ...]:
    prebuilt = options.schema_from is not None or options.schema_from_cmd is not None
    stages = ["provision", "schema"]
    stages += ["drift", "seed", "integrity"] if prebuilt else ["seed", "integrity", "drift"]
    stages += ["health", "plans", "benchmarks"]
    if options.scaling():
        stages.append("scaling")
    if options.load:
        stages.append("load")
    if options.baseline is not None:
        stages.append("compare")
    return (*stages, "teardown")


def run_signoff(options: SignoffOptions, display: Display) -> tuple[Signoff, frozenset[str]]:
    """Run the pipeline on every chosen server; returns the sign-off and the secrets to scrub from files."""
    import schema

    started = time.perf_counter()
    baselines = load_baselines(options.baseline) if options.baseline is not None else ()
    found_secrets: set[str] = set()
    targets = []
    for index, choice in enumerate(options.servers, start=1):
        if len(options.servers) > 1:
            display.console.rule(f"server {index} of {len(options.servers)}: {_choice_text(choice)}")
        targets.append(run_target(choice, options, display, baselines, found_secrets))
    from chatbench import __version__ as version

    signoff = Signoff(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        profile=options.profile,
        schema_source=options.schema_source,
        schema_fingerprint=schema.fingerprint(),
        chatbench_version=version,
        targets=tuple(targets),
        baseline=str(options.baseline) if options.baseline is not None else None,
        command=redact(options.command),
        notes=(f"pipeline wall time {time.perf_counter() - started:.1f} s",),
    )
    return signoff, frozenset(found_secrets)


def _choice_text(choice: ServerChoice) -> str:
    what = choice.image or choice.pg_bin or (f"PostgreSQL {choice.version_hint}" if choice.version_hint else "default")
    return f"{choice.backend} {what}"


def run_target(
    choice: ServerChoice,
    options: SignoffOptions,
    display: Display,
    baselines: Sequence[tuple[str, BenchmarkRun]],
    found_secrets: set[str],
) -> TargetSignoff:
    """The whole pipeline on one server. Never raises for a stage failure: it is recorded instead."""
    rec = _Recorder(display)
    state: dict[str, Any] = {}
    stack = contextlib.ExitStack()
    try:
        _pipeline(choice, options, display, rec, state, stack, baselines, found_secrets)
    except _StageError:
        pass
    finally:
        teardown_started = time.perf_counter()
        try:
            stack.close()
            rec.add(
                StageTiming("teardown", time.perf_counter() - teardown_started, "ok", "server and databases removed")
            )
        except Exception as exc:  # teardown must not hide the verdict; it is reported
            rec.add(StageTiming("teardown", time.perf_counter() - teardown_started, "error", _one_line(exc)))
    done = {s.stage for s in rec.stages}
    reason = f"not run: {rec.error.split(':', 1)[0]} errored" if rec.error else "not run"
    skipped = [StageTiming(name, 0.0, "skipped", reason) for name in planned_stages(options) if name not in done]
    order = {name: i for i, name in enumerate(planned_stages(options))}
    stages = tuple(sorted([*rec.stages, *skipped], key=lambda s: order.get(s.stage, len(order))))
    server: Server | None = state.get("server")
    label = state.get("label") or _choice_text(choice)
    return TargetSignoff(
        label=label,
        server=server.describe() if server is not None else {"backend": choice.backend},
        stages=stages,
        checks=tuple(rec.checks),
        seed=state.get("seed_summary"),
        verification=state.get("verification"),
        benchmark=state.get("benchmark"),
        comparison=state.get("comparison"),
        scaling=tuple(state.get("scaling", ())),
        error=rec.error,
    )


def _pipeline(
    choice: ServerChoice,
    options: SignoffOptions,
    display: Display,
    rec: _Recorder,
    state: dict[str, Any],
    stack: contextlib.ExitStack,
    baselines: Sequence[tuple[str, BenchmarkRun]],
    found_secrets: set[str],
) -> None:
    import loadgen

    with rec.stage("provision") as info:
        server = stack.enter_context(
            provision(
                choice.backend,
                pg_bin=choice.pg_bin,
                image=choice.image,
                dsn=choice.dsn,
                use_dsn_database=options.use_dsn_database,
                allow_destructive=options.allow_destructive,
                announce=display.note,
            )
        )
        if server.url.password:
            found_secrets.add(str(server.url.password))
        state["server"] = server
        state["label"] = rec.label = f"PostgreSQL {server.version} ({server.backend})"
        info["detail"] = f"{server.backend}, PostgreSQL {server.version}, {server.display_url}"
    spec = loadgen.load_spec(options.profile)
    prebuilt = options.schema_from is not None or options.schema_from_cmd is not None

    with rec.stage("schema") as info:
        if prebuilt:
            from schema.verify import prebuilt as builder

            if options.schema_from is not None:
                builder.build_from_sql(server, options.schema_from)
            else:
                assert options.schema_from_cmd is not None
                builder.build_from_cmd(server, options.schema_from_cmd)
            info["detail"] = f"built by {options.schema_source}"
        else:
            info["detail"] = "canonical models (built around the bulk load from schema.load_phases())"

    if prebuilt:
        _drift(server, None, rec, state, display)
        with rec.stage("seed") as info:
            seed_result = _seed_prebuilt(server, spec, options, display, stack)
            info["detail"] = _seed_detail(seed_result) + "; transplanted into the pre-built schema"
    else:
        with rec.stage("seed") as info:
            seed_result = loadgen.seed(server, spec, seed=options.seed, use_cache=options.use_cache, progress=True)
            info["detail"] = _seed_detail(seed_result)
        if seed_result.database != server.database:
            server = server.with_database(seed_result.database, owns_database=True)
            state["server"] = server
    state["seed_summary"] = _seed_summary(seed_result)

    with rec.stage("integrity") as info:
        with display.status("integrity check"):
            report = loadgen.check_integrity(
                server,
                spec,
                whales={w.conversation_id: w.messages for w in seed_result.params.whales},
                expected_checksum=seed_result.checksum,
                raise_on_failure=False,
            )
        for item in report.checks:
            rec.check("integrity", item.name, item.ok, f"{item.name}: expected {item.expected}, got {item.actual}")
        info["detail"] = report.summary()
        info["status"] = rec.status_of("integrity")

    if not prebuilt:
        _drift(server, seed_result, rec, state, display)
    _health_and_plans(server, seed_result, rec, state, display)

    with rec.stage("benchmarks") as info:
        run = measure(server, seed_result, options, display, profile=options.profile)
        # The verification's plans travel with the run, so a later comparison sees plan shapes too.
        plans = (state.get("verification") or {}).get("health_plans", {}).get("plans")
        if plans:
            run = replace(run, notes={**run.notes, "plans": plans})
        for result in run.scenarios:
            message = (
                "; ".join(result.failures)
                if result.failures
                else (
                    f"{result.scenario}: p95 {result.stats.p95:.3f} ms, p99 {result.stats.p99:.3f} ms"
                    + (" (no target)" if result.target is None else " within target")
                )
            )
            rec.check(
                "benchmarks",
                result.scenario,
                result.verdict != "FAIL",
                message,
                "error" if result.target is not None else "info",
            )
        for name, why in dict(run.notes.get("skipped", {})).items():
            rec.check("benchmarks", name, False, f"{name}: not measured: {why}", "warning")
        state["benchmark"] = run
        info["detail"] = (
            f"{len(run.scenarios)} scenarios × {run.notes.get('rounds')} rounds, "
            f"{sum(r.verdict == 'FAIL' for r in run.scenarios)} over target"
        )
        info["status"] = rec.status_of("benchmarks")

    state["scaling"] = _main_points(seed_result, run, options.profile)
    if options.scaling():
        state["scaling"] += _scaling(server, options, display, rec)

    if options.load:
        with rec.stage("load") as info:
            load = run_load_stage(server, seed_result, options, display)
            run = replace(run, load=load)
            state["benchmark"] = run
            ok = load.errors == 0
            first = f"; first: {load.error_samples[0]}" if load.error_samples else ""
            rec.check("load", "errors", ok, f"load: {load.errors} errors in {load.total} operations{first}")
            info["detail"] = (
                f"{load.clients} clients, {load.throughput_per_s:.0f} ops/s, "
                f"p99 {load.overall.percentiles_ms.get('p99', float('nan')):.3f} ms, {load.errors} errors"
            )
            info["status"] = rec.status_of("load")

    if options.baseline is not None:
        with rec.stage("compare") as info:
            baseline = pick_baseline(baselines, server)
            with display.status("comparing with the baseline"):
                comparison = compare_runs(run, baseline, options.thresholds)
            state["comparison"] = comparison
            _comparison_checks(comparison, rec)
            info["detail"] = f"{comparison.verdict}: {comparison.conclusion()}"
            info["status"] = rec.status_of("compare")


def _drift(
    server: Server, seed_result: SeedResult | None, rec: _Recorder, state: dict[str, Any], display: Display
) -> None:
    from schema.verify import verify

    with rec.stage("drift") as info:
        with display.status("drift") as update:
            result = verify(server, seed_result, only=["drift"], progress=update)
        _findings(result, rec, "drift")
        state.setdefault("verification", {})["drift"] = result.to_json()
        info["detail"] = f"{len(result.checks)} checks, {len(result.errors)} errors"
        info["status"] = rec.status_of("drift")


def _health_and_plans(
    server: Server, seed_result: SeedResult, rec: _Recorder, state: dict[str, Any], display: Display
) -> None:
    """One verification call for both (one catalog read); its own timings split the wall time."""
    from schema.verify import verify

    started = time.perf_counter()
    try:
        with display.status("index health and plan contracts") as update:
            result = verify(server, seed_result, only=["health", "plans"], progress=update)
    except Exception as exc:
        raise rec.failed("health", time.perf_counter() - started, exc) from exc
    wall = time.perf_counter() - started
    health_s = sum(v for k, v in result.timings.items() if k.startswith("health."))
    for group, seconds in (("health", health_s), ("plans", max(0.0, wall - health_s))):
        _findings(result, rec, group)
        errors = sum(1 for f in result.findings if f.check == group and f.severity == "error")
        checks = sum(1 for c in result.checks if c.name.startswith(group + "."))
        detail = f"{checks} checks, {errors} errors"
        if group == "plans":
            detail += f", {len(result.plans)} plans judged ({result.params_source} scenarios)"
        rec.add(StageTiming(group, seconds, rec.status_of(group), detail))
    state.setdefault("verification", {})["health_plans"] = result.to_json()


def _findings(result: Any, rec: _Recorder, group: str) -> None:
    """Findings become checks (error fails, warning shows); checks with no finding are recorded as passed."""
    for finding in result.findings:
        if finding.check != group or finding.severity == "info":
            continue
        rec.check(group, finding.object, False, finding.message(), finding.severity)
    for outcome in result.checks:
        if outcome.name.startswith(group + ".") and outcome.passed and not outcome.warnings:
            rec.check(group, outcome.name, True, outcome.doc)


def _seed_detail(result: SeedResult) -> str:
    how = "snapshot/template cache hit" if result.from_cache else "seeded now"
    seconds = sum(v for v in result.timings.values())
    return f"{result.counts.get('messages', 0):,} messages, {how} ({seconds:.2f} s in loadgen)"


def _seed_summary(result: SeedResult) -> dict[str, Any]:
    return {
        "profile": result.profile,
        "seed": result.seed,
        "order": result.order,
        "counts": dict(result.counts),
        "checksum": result.checksum,
        "from_cache": result.from_cache,
        "cache_key": result.cache_key,
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "created_at_correlation": result.created_at_correlation,
        "whales": len(result.params.whales),
    }


def _seed_prebuilt(
    server: Server, spec: Any, options: SignoffOptions, display: Display, stack: contextlib.ExitStack
) -> SeedResult:
    """Seed a canonical sibling (cache), then load its rows into the schema the application built."""
    import loadgen
    from schema.verify import prebuilt as builder

    sibling = stack.enter_context(temporary_database(server, "cbs_seed"))
    result = loadgen.seed(sibling, spec, seed=options.seed, use_cache=options.use_cache, progress=True)
    source = (
        sibling if result.database == sibling.database else sibling.with_database(result.database, owns_database=True)
    )
    with display.status("loading the seeded rows into the pre-built schema"):
        builder.transplant(source, server)
    return replace(result, database=server.database)


# --- measuring ------------------------------------------------------------------------------------------


def measure(
    server: Server,
    seed_result: SeedResult,
    options: SignoffOptions,
    display: Display,
    *,
    profile: str,
    only: Sequence[str] | None = None,
    rounds: int | None = None,
    warmup: int | None = None,
) -> BenchmarkRun:
    """Run the benchmark scenarios in-process through ``BenchSession.measure`` (the suite's own code)."""
    from benchmarks.scenarios import SCENARIOS
    from benchmarks.session import open_session, rounds_for
    from benchmarks.targets import load_targets

    targets = load_targets(options.targets_file)
    scenarios = [s for s in SCENARIOS if only is None or s.name in only]
    load_before = os.getloadavg()[0]
    default_rounds, default_warmup = rounds_for(profile)
    if rounds is None:
        rounds = options.rounds if options.rounds is not None else min(default_rounds, SIGNOFF_ROUNDS[0])
    if warmup is None:
        warmup = options.warmup if options.warmup is not None else min(default_warmup, SIGNOFF_ROUNDS[1])
    with (
        open_session(
            server,
            seed_result,
            profile=profile,
            targets=targets,
            pin_mode=options.pin_mode,  # type: ignore[arg-type]
            rounds=rounds,
            warmup=warmup,
        ) as session,
        display.progress() as bar,
    ):
        task = bar.add_task(f"benchmarks ({profile})", total=len(scenarios))
        for scenario in scenarios:
            bar.update(task, description=f"{profile}: {scenario.name}")
            params = session.params_for(scenario)
            if not params:
                session.skipped[scenario.name] = f"the {profile} data has no instance of it ({scenario.doc})"
            else:
                contrast = "contrast" in scenario.canonical.tags
                session.rounds = min(rounds, CONTRAST_ROUNDS[0]) if contrast else rounds
                session.warmup = min(warmup, CONTRAST_ROUNDS[1]) if contrast else warmup
                session.measure(scenario, timed=budgeted_rounds(options.scenario_budget_s), params=params)
            bar.advance(task)
        run = session.to_run()
    # The machine's load while measuring: a comparison warns when either run shared the machine.
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count() or 1}
    notes = {
        **run.notes,
        "load_average": load,
        "scenario_budget_s": options.scenario_budget_s,
        "data_checksum": seed_result.checksum,
    }
    return replace(run, notes=notes)


def budgeted_rounds(budget_s: float | None) -> Callable[[Callable[[], Any], int, int], list[float]]:
    """``benchmarks.session.time_rounds`` with a deadline: the same perf_counter loop, cut after ``budget_s``.

    Warm-up gets a tenth of the budget. At least ``MIN_BUDGET_ROUNDS`` rounds are always timed, so
    the statistics (and a comparison's tests) have samples to work on.
    """
    from benchmarks.session import time_rounds

    if budget_s is None:
        return time_rounds

    def timed(target: Callable[[], Any], rounds: int, warmup: int) -> list[float]:
        clock = time.perf_counter
        deadline = clock() + budget_s / 10
        for done in range(warmup):
            if done and clock() > deadline:
                break
            target()
        samples: list[float] = []
        deadline = clock() + budget_s
        for _ in range(rounds):
            start = clock()
            target()
            end = clock()
            samples.append(end - start)
            if end > deadline and len(samples) >= MIN_BUDGET_ROUNDS:
                break
        return samples

    return timed


def _main_points(seed_result: SeedResult, run: BenchmarkRun, profile: str) -> list[ScalingPoint]:
    """The main run's own points of the scaling plot (its data size)."""
    messages = int(seed_result.counts.get("messages", 0))
    return [
        ScalingPoint(r.scenario, messages, r.stats.p50, r.stats.p95, profile)
        for r in run.scenarios
        if r.scenario in SCALING_SCENARIOS
    ]


def _scaling(server: Server, options: SignoffOptions, display: Display, rec: _Recorder) -> list[ScalingPoint]:
    """A few scenarios again on smaller seeded databases (cached), for the scaling-by-size plot.

    Evidence, not a check: a failure here is shown as a warning and does not fail the sign-off.
    """
    import loadgen

    points: list[ScalingPoint] = []
    started = time.perf_counter()
    measured = []
    try:
        for profile in options.scaling():
            with temporary_database(server, "cbs_scale") as sibling:
                small = loadgen.seed(
                    sibling, loadgen.load_spec(profile), seed=options.seed, use_cache=options.use_cache, progress=False
                )
                target = (
                    sibling
                    if small.database == sibling.database
                    else sibling.with_database(small.database, owns_database=True)
                )
                small_run = measure(
                    target,
                    small,
                    options,
                    display,
                    profile=profile,
                    only=SCALING_SCENARIOS,
                    rounds=options.scaling_rounds,
                    warmup=max(10, options.scaling_rounds // 10),
                )
            points += [
                ScalingPoint(r.scenario, int(small.counts.get("messages", 0)), r.stats.p50, r.stats.p95, profile)
                for r in small_run.scenarios
            ]
            measured.append(f"{profile} ({small.counts.get('messages', 0):,} messages)")
        rec.add(
            StageTiming(
                "scaling",
                time.perf_counter() - started,
                "ok",
                f"{len(SCALING_SCENARIOS)} scenarios re-measured on {', '.join(measured)}",
            )
        )
    except (ChatbenchError, psycopg.Error, LookupError) as exc:
        rec.add(StageTiming("scaling", time.perf_counter() - started, "failed", _one_line(exc)))
        rec.check("scaling", "scaling", False, f"scaling by data size not measured: {_one_line(exc)}", "warning")
    return points


def run_load_stage(server: Server, seed_result: SeedResult, options: SignoffOptions, display: Display) -> Any:
    from chatbench.loadtest import DEFAULT_WEIGHTS, LoadConfig, run_load
    from chatbench.loadtest.mix import parameter_pools

    weights = dict(DEFAULT_WEIGHTS)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        pools = parameter_pools(conn, seed_result.params, weights)
    config = LoadConfig(
        clients=options.load_clients, duration_s=options.load_seconds, weights=weights, seed=options.seed
    )
    with display.status("load") as update:
        return run_load(server.conninfo(), config, pools, progress=update)


# --- baseline ---------------------------------------------------------------------------------------------


def load_baselines(path: Path) -> tuple[tuple[str, BenchmarkRun], ...]:
    """Benchmark runs in a baseline file: a ``signoff.json`` (one per server) or a benchmark result JSON."""
    from reports.inputs import read_runs

    return read_runs(path)


def pick_baseline(baselines: Sequence[tuple[str, BenchmarkRun]], server: Server) -> BenchmarkRun:
    """The baseline run for this server: same major version if the file has several, else the only one."""
    if not baselines:
        raise ConfigError("--baseline: the file holds no benchmark run to compare with")
    if len(baselines) == 1:
        return baselines[0][1]
    major = server.version_num // 10000
    for _, run in baselines:
        if run.environment.server_version_num // 10000 == major:
            return run
    return baselines[0][1]


def _comparison_checks(comparison: Comparison, rec: _Recorder) -> None:
    for difference in comparison.environment:
        if difference.decisive:
            rec.check(
                "compare",
                f"environment.{difference.field}",
                False,
                f"environment differs from the baseline: {difference.describe()}",
                "warning",
            )
    for item in comparison.all_items:
        if item.failing:
            rec.check("compare", item.scenario, False, item.line())
        elif item.status in ("changed", "missing"):
            rec.check("compare", item.scenario, False, item.line(), "warning")
        else:
            rec.check("compare", item.scenario, True, item.line())
    for note in comparison.notes:
        rec.check("compare", "note", False, note, "warning")


# --- terminal summary ----------------------------------------------------------------------------------


def summary_table(signoff: Signoff) -> Table:
    """Seconds per stage (one column per server) and the verdicts: printed at the end of every run."""
    table = Table(title=f"chatbench sign-off: {signoff.verdict}", title_justify="left")
    table.add_column("stage")
    for target in signoff.targets:
        table.add_column(target.label, justify="right")
    names: list[str] = []
    for target in signoff.targets:
        names += [s.stage for s in target.stages if s.stage not in names]
    style = {"ok": "", "failed": "red", "error": "yellow", "skipped": "dim"}
    for name in names:
        cells = []
        for target in signoff.targets:
            timing = target.stage(name)
            if timing is None:
                cells.append("")
            else:
                mark = {"ok": "", "failed": " ✗", "error": " !", "skipped": " –"}[timing.status]
                text = f"{timing.seconds:.2f} s{mark}"
                cells.append(f"[{style[timing.status]}]{text}[/]" if style[timing.status] else text)
        table.add_row(name, *cells)
    table.add_section()
    table.add_row("[b]total[/b]", *[f"[b]{t.seconds:.2f} s[/b]" for t in signoff.targets])
    colors = {"PASS": "green", "FAIL": "red", "ERROR": "yellow"}
    table.add_row("[b]verdict[/b]", *[f"[b {colors[t.verdict]}]{t.verdict}[/]" for t in signoff.targets])
    return table
