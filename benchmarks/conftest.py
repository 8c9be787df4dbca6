"""Session fixtures of the benchmark suite: one throwaway server, seeded once, one measuring session.

The options (``--chatbench-profile``, ``--chatbench-rounds``, ...) come from chatbench's pytest plugin,
generated from the settings declarations (``chatbench.settings``); each is also settable by its
``CHATBENCH_*`` variable or in ``chatbench.toml`` / ``[tool.chatbench]``, with the ``chatbench bench``
defaults. ``pytest --help`` lists them under "chatbench".

The seed goes through the snapshot cache, so a second run of the same profile, seed and schema reuses
the seeded template instead of generating again. At the end, the terminal summary prints
p50/p95/p99 per scenario with target and verdict, and the run (raw samples, environment fingerprint,
depth scaling) is written as results JSON.

Output follows ``chatbench.output``: on a terminal pytest's dots and a table at the terminal's width;
in a log (not a terminal) no dots but plain progress lines (the benchmarks starting, at most one
"still running" line per ``progress_seconds`` naming the scenario and how many are done, the end) and
one whole line per scenario. Provisioning and seeding show their progress through pytest's capture.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from chatbench import loadgen, output
from chatbench.benchmarks.flags import refusal
from chatbench.benchmarks.options import SUITE_COMMAND, SUITE_SETTINGS
from chatbench.benchmarks.publish import show_run
from chatbench.benchmarks.results import BenchmarkRun, write
from chatbench.benchmarks.session import BenchSession, open_session
from chatbench.benchmarks.targets import load_targets
from chatbench.convert import to_plain
from chatbench.errors import ChatbenchError
from chatbench.output import Output, Stage, console_for
from chatbench.provision.choice import provision_from
from chatbench.schema.package import canonical, load_models
from chatbench.settings import Settings, resolve_pytest
from chatbench.settings import pytest_option as plugin_spelling  # a pytest_* name in a conftest is read as a hook

_SESSION_KEY = pytest.StashKey[BenchSession]()
_RUN_KEY = pytest.StashKey[BenchmarkRun]()


def _finished_run(config: pytest.Config, session: BenchSession) -> BenchmarkRun:
    """The session's run, built once when the suite ends: ``--benchmark-json`` and the results file
    carry the same run (one ``created_at``, one reading of the machine's load)."""
    if _RUN_KEY not in config.stash:
        config.stash[_RUN_KEY] = session.to_run()
    return config.stash[_RUN_KEY]
_PROGRESS_KEY = pytest.StashKey[tuple[contextlib.ExitStack, Stage]]()


class _ReporterFile:
    """pytest's terminal as a file for rich, so chatbench's lines and pytest's own share one stream."""

    def __init__(self, reporter: Any) -> None:
        self._reporter = reporter

    def write(self, text: str) -> int:
        self._reporter.write(text, flush=True)
        return len(text)

    def flush(self) -> None:
        self._reporter.flush()


def _output(config: pytest.Config) -> Output | None:
    """chatbench's output on pytest's terminal stream (None without pytest's terminal reporter)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    return Output(console_for(file=_ReporterFile(reporter), terminal=bool(reporter.isatty()),  # type: ignore[arg-type]
                              width=config.get_terminal_writer().fullwidth))


def _in_a_log(config: pytest.Config) -> bool:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return reporter is not None and not reporter.isatty()


@contextlib.contextmanager
def _uncaptured(config: pytest.Config) -> Iterator[None]:
    """Let provisioning and seeding show their progress (pytest captures fixture output otherwise)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        yield


def pytest_collection_modifyitems(config: pytest.Config) -> None:
    """pytest-benchmark's flags that the suite cannot honour are a usage error before anything runs
    (benchmarks/flags.py); checked here, not at configure, so ``--pyargs`` (which loads this file late)
    gets the same one line."""
    problem = refusal(config)
    if problem is not None:
        raise pytest.UsageError(problem)


@pytest.fixture(scope="session")
def bench_settings(pytestconfig: pytest.Config) -> Settings:
    try:
        return resolve_pytest(pytestconfig, SUITE_COMMAND, SUITE_SETTINGS)
    except ChatbenchError as exc:
        pytest.exit(f"chatbench: {exc}", returncode=2)


@pytest.fixture(scope="session")
def bench_profile(bench_settings: Settings) -> str:
    return bench_settings.profile


@pytest.fixture(scope="session")
def bench_server(pytestconfig: pytest.Config, bench_settings: Settings) -> Iterator[Any]:
    try:
        with contextlib.ExitStack() as stack:
            with _uncaptured(pytestconfig):
                server = stack.enter_context(provision_from(bench_settings, announce=output.stderr().note))
            yield server
    except ChatbenchError as exc:
        pytest.exit(f"chatbench: {exc}", returncode=2)


@pytest.fixture(scope="session")
def bench_seeded(pytestconfig: pytest.Config, bench_settings: Settings, bench_server: Any,
                 bench_profile: str) -> tuple[Any, Any]:
    """(server pointed at the seeded database, SeedResult): seeded once, through the snapshot cache, in the
    schema the seeder builds from the package (the canonical models, or ``--chatbench-models``)."""
    try:
        package = canonical() if bench_settings.models is None else load_models(
            bench_settings.models, setting=plugin_spelling("models"))
        with _uncaptured(pytestconfig):
            result = loadgen.seed(bench_server, loadgen.load_spec(bench_profile), seed=bench_settings.seed,
                                  use_cache=bench_settings.cache, package=package)
    except ChatbenchError as exc:
        pytest.exit(f"chatbench: {exc}", returncode=2)
    return result.server_for(bench_server), result


@pytest.fixture(scope="session")
def bench_session(pytestconfig: pytest.Config, bench_settings: Settings, bench_seeded: tuple[Any, Any],
                  bench_profile: str) -> Iterator[BenchSession]:
    server, seed = bench_seeded
    try:
        targets = load_targets(bench_settings.targets)
    except ChatbenchError as exc:
        pytest.exit(str(exc), returncode=2)
    with open_session(server, seed, profile=bench_profile, targets=targets, pin_mode=bench_settings.pin,
                      rounds=bench_settings.rounds, warmup=bench_settings.warmup,
                      driver=bench_settings.driver, retries=bench_settings.retries,
                      retry_budget_s=bench_settings.retry_budget) as session:
        pytestconfig.stash[_SESSION_KEY] = session
        yield session


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    """The chatbench run (environment, raw samples, noise, verdicts) inside ``--benchmark-json``, so
    ``chatbench compare`` reads that file like every other result file chatbench writes."""
    bench = config.stash.get(_SESSION_KEY, None)
    if bench is not None and bench.results:
        output_json["chatbench"] = to_plain(_finished_run(config, bench))


@pytest.hookimpl(wrapper=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """In a log, no dots: the progress lines below say how far the run is, whole lines each."""
    category, letter, word = yield
    return (category, "" if _in_a_log(config) else letter, word)


def pytest_collection_finish(session: pytest.Session) -> None:
    """In a log: the benchmarks' progress as plain lines (a terminal has pytest's own)."""
    out = _output(session.config)
    if out is None or out.terminal or not session.items:
        return
    stack = contextlib.ExitStack()
    # Lines only between tests (pytest captures the stream during each one), so no timer: a line per
    # scenario started, at most one per progress_seconds.
    stage = stack.enter_context(out.stage("benchmarks", total=len(session.items), unit="scenarios", ticker=False))
    session.config.stash[_PROGRESS_KEY] = (stack, stage)


def _progress(config: pytest.Config) -> Stage | None:
    progress = config.stash.get(_PROGRESS_KEY, None)
    return None if progress is None else progress[1]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Any:
    stage = _progress(item.config)
    if stage is not None:
        stage.step(item.name.partition("[")[2].rstrip("]") or item.name)  # the scenario
    try:
        return (yield)
    finally:
        if stage is not None:
            stage.advance()


def _end_progress(config: pytest.Config) -> None:
    progress = config.stash.get(_PROGRESS_KEY, None)
    if progress is not None:
        del config.stash[_PROGRESS_KEY]
        progress[0].close()


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    try:
        return (yield)
    finally:
        _end_progress(session.config)  # after the last scenario, before pytest's summaries


def pytest_unconfigure(config: pytest.Config) -> None:
    _end_progress(config)  # a run that stopped early still says so


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    out = _output(config)
    if session is None or not session.results or out is None:
        return

    run = _finished_run(config, session)
    settings = resolve_pytest(config, SUITE_COMMAND, ("results",))
    assert settings.results is not None  # the bench command's default is a file
    path = write(run, settings.results)
    show_run(run, out, pinning=session.pinning.describe(), path=path)  # as `chatbench bench` shows it
