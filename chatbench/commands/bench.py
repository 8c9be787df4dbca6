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
from chatbench.errors import ChatbenchError
from chatbench.settings import Settings, pytest_option

NAME = "bench"
HELP = "benchmark the history queries against targets (p50/p95/p99 table, JSON with raw samples)"
SETTINGS = (*SUITE_SETTINGS, "json", "select", "fidelity")


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


def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.fidelity:
        return _fidelity(settings)
    import pytest

    from chatbench import benchmarks

    assert settings.json is not None
    Path(settings.json).parent.mkdir(parents=True, exist_ok=True)
    argv = [str(Path(benchmarks.__file__).parent), "-q", *_suite_arguments(settings),
            "--benchmark-json", settings.json, "--benchmark-sort", "name"]
    if settings.select is not None:
        argv += ["-k", settings.select]
    code = int(pytest.main(argv))
    if code == 0:
        # A target the machine's noise left undecided is a skip to pytest; to chatbench it is INCONCLUSIVE.
        from chatbench.benchmarks.results import read

        assert settings.results is not None  # the bench command's default is a file
        return 3 if Path(settings.results).is_file() and read(settings.results).verdict == "INCONCLUSIVE" else 0
    if code == 1:
        return 1  # a benchmark ran and missed its target (the one-line reason is in the output)
    raise ChatbenchError(f"the benchmark suite did not run to a verdict (pytest exit code {code}); "
                         "see the output above")


def _fidelity(settings: Settings) -> int:
    from chatbench import loadgen
    from chatbench.benchmarks import fidelity
    from chatbench.benchmarks.results import BenchmarkRun, write
    from chatbench.benchmarks.session import open_session
    from chatbench.benchmarks.targets import load_targets
    from chatbench.commands._common import console, server_from

    with server_from(settings) as server:
        seed = loadgen.seed(server, loadgen.load_spec(settings.profile), seed=settings.seed, use_cache=settings.cache)
        if seed.database != server.database:
            server = server.with_database(seed.database, owns_database=True)
        with open_session(server, seed, profile=settings.profile, targets=load_targets(settings.targets),
                          pin_mode=settings.pin) as session:
            console.print(f"[dim]{session.pinning.describe()}[/dim]")
            with console.status("fidelity") as status:
                report = fidelity.check(server, session, rounds=3000 if settings.rounds is None else settings.rounds,
                                        warmup=settings.warmup if settings.warmup is not None else 300,
                                        progress=lambda message: status.update(f"fidelity: {message}"))
            run = BenchmarkRun(kind="fidelity", run_id=session.run_id, created_at=session.to_run().created_at,
                               environment=session.environment, fidelity=report)
    print(fidelity.render(report))
    given = settings.results if settings.source("results") != "default" else None
    path = write(run, "out/fidelity.json" if given is None else given)
    console.print(f"results: {path}")
    return 0
