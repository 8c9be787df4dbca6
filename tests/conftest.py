"""Real PostgreSQL servers for the test session, provisioned by chatbench itself, and the other
things several test files need once.

``pg`` is one local (embedded wheel) server for the whole session; ``fresh_db`` gives each test its
own database on it (dropped afterwards), ``schema_db`` the same with the canonical schema applied.
``dsn`` is one server with real password authentication for the session (``dsn_server``), ``run_dir``
a run directory of the test's own, ``wheel`` the project's wheel, built once per session (per xdist
worker: the packaging tests share an xdist group so they share one build).
Container tests need a Docker engine: they skip with the reason when none answers, except under
``CI=true`` where a missing engine is a failure (CI brings one up). A test rerun after a failure (``--reruns``)
has its failure's error lines printed at the end of the run ("why tests were rerun"), so a flake in a CI log can be
read and fixed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dsn_server import DsnServer, password_server
from servers import drop_database, make_database, require_docker, require_pg15

from chatbench import schema
from chatbench.provision import Server, provision
from chatbench.provision.paths import run_root

REPO = Path(__file__).resolve().parents[1]
STAGE_FOLDERS = ("schema", "loadgen", "verify", "benchmarks", "reports")


@pytest.fixture(scope="session", autouse=True)
def one_import_root() -> Iterator[None]:
    """Everything runs under ``chatbench.*``: no stage folder is ever imported by its folder name."""
    yield
    leaked = sorted(
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in STAGE_FOLDERS and str(getattr(module, "__file__", "") or "").startswith(str(REPO))
    )
    assert not leaked, f"imported by folder name instead of chatbench.*: {leaked}"


@pytest.fixture(scope="session", autouse=True)
def no_xdist_worker_variables_in_children() -> None:
    """Run with ``-n``, this session's worker variables would reach the suites and commands the tests
    start, and ``pytest benchmarks`` refuses to run under xdist (pytest-benchmark would time nothing).
    Those children are runs of their own; a test that wants the variables passes them explicitly."""
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        del os.environ[name]


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_reaches_the_commands() -> None:
    """A shell without job control starts a background job (``nox -s tests &`` in a script) with SIGINT ignored,
    and every process inherits that: the commands of the Ctrl-C tests would ignore their Ctrl-C and time out
    (seen as eight unrelated-looking failures). The session puts Python's own handler back, so the processes it
    starts begin with the default again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--dist loadgroup`` (the noxfile's WORKERS and FAST_WORKERS) for pytest 9: pytest-xdist sends an
    ``xdist_group``'s tests to one worker by the ``@group`` suffix its worker writes into ``item._nodeid``, but
    pytest 9 reads a node's id from ``item._id``: the suffix was lost and every group spread over the workers (each then
    building the module fixtures and seed templates the group exists to share). The suffix is written here
    where pytest 9 reads it, on an xdist worker under loadgroup, when xdist's own did not take. Upstream:
    pytest-dev/pytest-xdist#1386 (open, fix proposed in #1388); drop this hook once a fixed xdist is out."""
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId  # pytest >= 9; before it, xdist's own suffix works
    except ImportError:
        return
    for item in items:
        marks = item.iter_markers("xdist_group")
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks}
        suffix = "@" + "_".join(sorted(names))
        if names and hasattr(item, "_id") and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


RERUN_REASON_LINES = 15
_rerun_reasons: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep why a test was rerun: pytest-rerunfailures' summary (``-rR``) names a rerun test, never its failure,
    and a flake is fixed from its failure. (With xdist the controller receives every worker's reports.)"""
    if report.outcome == "rerun":
        lines = report.longreprtext.strip().splitlines()
        errors = [line for line in lines if line.startswith("E ")]  # the error and the assertion's message
        kept = [*errors[:RERUN_REASON_LINES], lines[-1]] if errors else lines[-RERUN_REASON_LINES:]
        _rerun_reasons.append((f"{report.nodeid} ({report.when})", "\n".join(kept)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _rerun_reasons:
        terminalreporter.section("why tests were rerun")
        for test, why in _rerun_reasons:
            terminalreporter.write_line(f"RERUN {test}:")
            terminalreporter.write_line(why)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``container`` or ``pg15`` needs that from the machine: without it the test skips
    with the reason, and fails under ``CI=true`` (CI provides both)."""
    if item.get_closest_marker("container"):
        require_docker()
    if item.get_closest_marker("pg15"):
        require_pg15()


@pytest.fixture(scope="session")
def pg() -> Iterator[Server]:
    with provision("local") as server:
        yield server


@pytest.fixture
def fresh_db(pg: Server) -> Iterator[Server]:
    db = make_database(pg)
    try:
        yield db
    finally:
        drop_database(db)


@pytest.fixture
def schema_db(fresh_db: Server) -> Server:
    schema.apply(fresh_db.url)
    return fresh_db


@pytest.fixture(scope="session")
def dsn() -> Iterator[DsnServer]:
    """Someone else's server, password-protected: one per session, shared by every file that needs it
    (each test makes and drops its own databases on it)."""
    with password_server() as server:
        yield server


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A run directory of this test's own (reachable by the server's OS user, unlike tmp_path), removed
    afterwards: a test that checks "nothing is left" looks here and is not confused by other runs."""
    path = run_root() / f"test-{secrets.token_hex(4)}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chatbench's wheel, built from the checkout once per session."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                           str(out), str(REPO)], cwd=out, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = out.glob("chatbench-*.whl")
    return built
