"""Benchmark the canonical history queries against targets (the pytest-benchmark suite in ``benchmarks/``).

Runs ``pytest benchmarks`` in-process with the chatbench options, so ``chatbench bench`` and
``pytest benchmarks`` are the same measurement: a throwaway server seeded with the profile
(snapshot cache reused), one benchmark per scenario, a table of p50/p95/p99 with target and
PASS/FAIL, the pytest-benchmark JSON (``--json``, raw samples in extra_info) and the chatbench
results JSON (``--results``). ``--fidelity`` instead compares the harness with pgbench -M prepared.
Exit 0 when every target is met, 1 when one is missed, 3 when none is missed but the noise measured on
this machine left one undecided (INCONCLUSIVE; the suite shows it as a skip with the reason).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chatbench.benchmarks.options import SUITE_SETTINGS
from chatbench.commands._common import judged_scenarios, require_writable
from chatbench.commands.schema_choice import schema_choice
from chatbench.errors import ChatbenchError, ConfigError
from chatbench.settings import Settings, pytest_option, where

NAME = "bench"
HELP = "benchmark the history queries against targets (p50/p95/p99 table, JSON with raw samples)"
SETTINGS = (*SUITE_SETTINGS, "json", "select", "fidelity", "format")


def _suite_arguments(settings: Settings) -> list[str]:
    """The command-line settings as the suite's own pytest options; the suite resolves the rest itself
    (environment, file, the ``bench`` defaults) exactly as this command did, so both measure the same."""
    argv: list[str] = []
    for name in SUITE_SETTINGS:
        if settings.source(name) != "argument":
            continue
        value = getattr(settings, name)
        if isinstance(value, bool):
            argv += [pytest_option(name)]  # a flag given on the command line: its non-default side
        elif isinstance(value, tuple):
            for item in value:
                argv += [pytest_option(name), item]
        elif value is not None:
            argv += [pytest_option(name), str(value)]
    return argv


def check_inputs(settings: Settings) -> None:
    """Everything the suite would refuse, refused here first with the command's own option names.

    pytest would answer a bad ``--targets`` or ``-k`` with an exit code and its own option names
    (``--chatbench-targets``); the suite resolves the same settings, so checking them here means it
    never has to.
    """
    from chatbench.benchmarks.scenarios import SCENARIOS
    from chatbench.provision.choice import one_server

    require_writable(settings, "bench seeds the data")
    one_server(settings)  # the server options agree (the suite provisions from the same settings)
    schema_choice(settings)  # --models imports and declares tables (the suite seeds the schema built from it)
    judged = judged_scenarios(settings)
    if settings.select is not None:
        chosen = selected_scenarios(settings.select, [s.name for s in SCENARIOS])
        if not chosen:
            raise ConfigError(f"{where(settings, 'select')}: matches no scenario; scenarios are "
                              f"{', '.join(s.name for s in SCENARIOS)}")
        if not judged & set(chosen):
            raise ConfigError(f"{where(settings, 'select')}: selects only scenarios without a budget for profile "
                              f"{settings.profile} ({', '.join(chosen)}), so nothing would be judged")


def selected_scenarios(expression: str, names: list[str]) -> list[str]:
    """The scenarios a pytest ``-k`` expression picks (its keyword rules: case-insensitive substrings)."""
    from _pytest.mark.expression import Expression

    try:
        compiled = Expression.compile(expression)
    except SyntaxError as exc:
        raise ConfigError(f"-k {expression}: not a valid expression ({exc.msg}); e.g. -k 'keyset and not last'") \
            from None

    def picks(name: str) -> bool:
        keywords = (f"test_history[{name}]", name, "test_history", "test_history.py", "benchmarks", "parametrize")
        return compiled.evaluate(lambda sub, /, **kwargs: not kwargs and any(sub.lower() in k.lower()
                                                                           for k in keywords))

    return [name for name in names if picks(name)]


class _ExitMessage:
    """Catches the one-line message the suite gives ``pytest.exit`` (pytest reports it as an interrupt)."""

    def __init__(self) -> None:
        self.message: str | None = None

    def pytest_keyboard_interrupt(self, excinfo: object) -> None:
        value = getattr(excinfo, "value", None)
        message = getattr(value, "msg", None)
        if isinstance(message, str):
            self.message = message.removeprefix("chatbench: ")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.fidelity:
        return _fidelity(settings)
    import contextlib
    import os
    import sys

    import pytest

    from chatbench import benchmarks
    from chatbench.benchmarks.results import read
    from chatbench.output import print_document

    check_inputs(settings)
    assert settings.json is not None
    assert settings.results is not None  # the bench command's default is a file
    Path(settings.json).parent.mkdir(parents=True, exist_ok=True)
    document = settings.format == "json"
    stream = sys.stderr if document else sys.stdout  # with --format json, stdout holds the document alone
    argv = [str(Path(benchmarks.__file__).parent), "-q", *_suite_arguments(settings),
            "--benchmark-json", settings.json, "--benchmark-sort", "name", "--benchmark-quiet",
            "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"]
    if not stream.isatty():
        argv += ["-o", "console_output_style=classic"]  # a log gets progress lines, not a "[100%]" gauge
    if settings.select is not None:
        argv += ["-k", settings.select]
    exit_message = _ExitMessage()
    # This process is a command of its own: an outer pytest-xdist run's worker variables (an app's suite
    # calling `chatbench bench`) are not this suite's, and would switch pytest-benchmark's timing off.
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        del os.environ[name]
    with contextlib.redirect_stdout(stream):
        code = int(pytest.main(argv, plugins=[exit_message]))
    results = Path(settings.results)
    if code in (0, 1) and document and results.is_file():
        print_document(results.read_text(encoding="utf-8"))
    if code == 0:
        # A target the machine's noise left undecided is a skip to pytest; to chatbench it is INCONCLUSIVE.
        return 3 if results.is_file() and read(results).verdict == "INCONCLUSIVE" else 0
    if code == 1:
        return 1  # a benchmark ran and missed its target (the one-line reason is in the output)
    if exit_message.message is not None:
        raise ChatbenchError(exit_message.message)
    raise ChatbenchError(f"the benchmark suite did not run to a verdict (pytest exit code {code}); "
                         "see the output above")


def _fidelity(settings: Settings) -> int:
    from chatbench import loadgen
    from chatbench.benchmarks import fidelity
    from chatbench.benchmarks.results import BenchmarkRun, write
    from chatbench.benchmarks.session import open_session
    from chatbench.benchmarks.targets import load_targets
    from chatbench.commands._common import out, server_from
    from chatbench.output import print_document

    require_writable(settings, "bench seeds the data")
    package = schema_choice(settings).package
    with server_from(settings) as server:
        seed = loadgen.seed(server, loadgen.load_spec(settings.profile), seed=settings.seed, use_cache=settings.cache,
                            package=package)
        server = seed.server_for(server)
        with open_session(server, seed, profile=settings.profile, targets=load_targets(settings.targets),
                          pin_mode=settings.pin) as session:
            out.note(session.pinning.describe())
            with out.stage("fidelity") as stage:
                report = fidelity.check(server, session, rounds=3000 if settings.rounds is None else settings.rounds,
                                        warmup=settings.warmup if settings.warmup is not None else 300,
                                        progress=stage.step)
            run = BenchmarkRun(kind="fidelity", run_id=session.run_id, created_at=session.to_run().created_at,
                               environment=session.environment, fidelity=report)
    given = settings.results if settings.source("results") != "default" else None
    path = write(run, "out/fidelity.json" if given is None else given)
    if settings.format == "json":
        out.line(fidelity.render(report))
        print_document(Path(path).read_text(encoding="utf-8"))
    else:
        print(fidelity.render(report))
    out.line(f"results: {path}")
    return 0
