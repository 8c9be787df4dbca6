"""chatbench's pytest plugin (entry point ``pytest11``): the ``--chatbench-*`` options and the fixtures.

Loaded by every pytest session in a venv where chatbench is installed, so it must stay light: at
import it loads only the settings declarations and the fixture objects' types; the server, database
and numeric stack load inside the fixtures, when a test asks for one. The options are generated from
``chatbench.settings`` like the CLI's, so ``pytest benchmarks``, ``pytest --pyargs chatbench.benchmarks``,
``chatbench bench`` and an application's suite accept the same settings, from the command line,
``CHATBENCH_*`` variables, ``chatbench.toml`` or ``[tool.chatbench]`` in ``pyproject.toml``.

Fixtures for an application's own tests (see ``chatbench.testing``):

- ``chatbench_server`` (session): the run's throwaway server, from the same backends and settings as the
  CLI (working as root); one per run, shared by every pytest-xdist worker;
- ``chat_db`` (function): a fresh database with the canonical schema, or the application's own
  (``--chatbench-models app.models:Base``, built from the models; ``--chatbench-schema-from FILE.sql`` /
  ``--chatbench-schema-from-cmd "alembic upgrade head"``, built the application's way);
- ``seeded_chat_db`` (function): a clone of the profile's seeded template (``--chatbench-profile``,
  default ``smoke``; another profile per test by indirect parametrization), seeded once per run.

Bad settings are a pytest usage error before any test runs; a bad profile parameter is a collection
error naming the test; a server or migration that fails is one line in each test that needed it.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from chatbench.benchmarks.options import SUITE_SETTINGS
from chatbench.errors import ChatbenchError
from chatbench.settings import (
    SERVER_SETTINGS,
    Settings,
    add_pytest_options,
    profile_names,
    refuse_both,
    resolve_pytest,
)
from chatbench.settings import pytest_option as spelled  # (a name starting "pytest_" would be taken for a hook)
from chatbench.testing.databases import ChatDatabase, ChatServer, SeededChatDatabase
from chatbench.testing.sharing import run_folder

if TYPE_CHECKING:
    from chatbench.testing.session import FixtureSession

FIXTURE_SETTINGS = (*SERVER_SETTINGS, "profile", "spec", "seed", "schema_from", "schema_from_cmd", "models",
                    "command_timeout")
"""The settings of the fixtures (resolved with the ``fixtures`` per-command defaults: profile ``smoke``)."""
FIXTURE_COMMAND = "fixtures"
PLUGIN_SETTINGS = tuple(dict.fromkeys((*SUITE_SETTINGS, *FIXTURE_SETTINGS)))
"""Every setting a pytest session can take: the benchmark suite's and the fixtures'."""
PROFILE_FIXTURES = ("seeded_chat_db",)
"""Fixtures whose indirect parameter is a profile name."""

_SETTINGS = pytest.StashKey[Settings]()
_TALLIES = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser, PLUGIN_SETTINGS)


def _check(settings: Settings) -> None:
    """What the declarations cannot check alone: one schema source, and models that import and declare
    tables (only when given: resolving them imports SQLAlchemy and the application's module)."""
    refuse_both(settings, "schema_from", "schema_from_cmd", spelling=spelled)
    if settings.models is not None:
        from chatbench.commands.schema_choice import schema_choice  # lazy: start-up, +0.27 s on this plugin's 0.13 s

        schema_choice(settings, spelling=spelled)


def pytest_configure(config: pytest.Config) -> None:
    """Resolve and check the settings up front: a bad value is a usage error before any test runs."""
    try:
        settings = resolve_pytest(config, FIXTURE_COMMAND, PLUGIN_SETTINGS)
        _check(settings)
    except ChatbenchError as exc:
        raise pytest.UsageError(f"chatbench: {exc}") from None
    config.stash[_SETTINGS] = settings
    config.stash[_TALLIES] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A profile given to ``seeded_chat_db`` by indirect parametrization must be a profile: a collection
    error naming the test otherwise (one line), before any server starts."""
    wanted = [name for name in PROFILE_FIXTURES if name in metafunc.fixturenames]
    if not wanted:
        return
    known = profile_names()
    for marker in metafunc.definition.iter_markers("parametrize"):
        names, values, indirect = _parametrize_args(marker)
        for name in wanted:
            if name not in names or not (indirect is True or (isinstance(indirect, list | tuple) and name in indirect)):
                continue
            index = names.index(name)
            for value in values:
                value = value.values if isinstance(value, type(pytest.param(None))) else value
                profile = value[index] if len(names) > 1 else value
                if not isinstance(profile, str) or profile not in known:
                    raise pytest.Collector.CollectError(
                        f"{metafunc.definition.nodeid}: {name} parameter {profile!r} is not a profile; "
                        f"use one of {', '.join(known)}"
                    )


def _parametrize_args(marker: pytest.Mark) -> tuple[list[str], list[Any], Any]:
    args = {**dict(zip(("argnames", "argvalues"), marker.args, strict=False)), **marker.kwargs}
    names = args.get("argnames", ())
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    return names, list(args.get("argvalues", ())), args.get("indirect", False)


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A chatbench error while setting up or tearing down a fixture: one line in the test's report."""
    try:
        yield
    except ChatbenchError as exc:
        raise pytest.fail.Exception(f"chatbench: {exc}", pytrace=False) from None  # (no chained report)


@pytest.fixture(scope="session")
def _chatbench_session(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[FixtureSession]:
    from chatbench.testing.session import FixtureSession  # lazy: start-up, +1.6 s on this plugin's 0.13 s

    workerinput = getattr(pytestconfig, "workerinput", None)
    worker = str(workerinput["workerid"]) if workerinput is not None else "main"
    folder = run_folder(tmp_path_factory.getbasetemp(), xdist_worker=workerinput is not None)
    with _one_line():
        session = FixtureSession.open(pytestconfig.stash[_SETTINGS], folder, worker)
    try:
        yield session
    finally:
        try:
            with _one_line():
                session.close()
        finally:
            tally = session.tally.to_json()
            if hasattr(pytestconfig, "workeroutput"):  # sent to the xdist controller for the summary
                pytestconfig.workeroutput["chatbench"] = json.dumps(tally)
            else:
                pytestconfig.stash[_TALLIES].append(tally)


@pytest.fixture(scope="session")
def chatbench_server(_chatbench_session: FixtureSession) -> ChatServer:
    """The run's throwaway PostgreSQL server (``.url``, ``.sqlalchemy_url``, ``.connect()``, ``.version``)."""
    return _chatbench_session.chat_server()


@pytest.fixture
def chat_db(_chatbench_session: FixtureSession) -> Iterator[ChatDatabase]:
    """A database of this test with the schema (canonical, or the application's own), dropped after it."""
    with _one_line(), _chatbench_session.chat_db() as db:
        yield db


@pytest.fixture
def seeded_chat_db(request: pytest.FixtureRequest, _chatbench_session: FixtureSession
                   ) -> Iterator[SeededChatDatabase]:
    """A clone of the profile's seeded template (whales, heavy users, deep cursors), dropped after the test.

    The profile is ``--chatbench-profile`` (default smoke), or the test's indirect parameter:
    ``@pytest.mark.parametrize("seeded_chat_db", ["ci"], indirect=True)``.
    """
    profile = getattr(request, "param", None)
    with _one_line(), _chatbench_session.seeded_chat_db(profile) as db:
        yield db


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect a worker's tally for the summary."""
    tally = getattr(node, "workeroutput", {}).get("chatbench")
    if tally is not None:
        node.config.stash[_TALLIES].append(json.loads(tally))


def summary_lines(tallies: list[dict[str, Any]]) -> list[str]:
    """One line per template: how often it was made (once per run), by whom, and its clones."""
    made: dict[str, list[dict[str, Any]]] = {}
    clones: dict[str, list[float]] = {}
    notes: list[str] = []
    for tally in tallies:
        for entry in tally["made"]:
            made.setdefault(entry["label"], []).append(entry)
        for label, seconds in tally["clones"].items():
            clones.setdefault(label, []).extend(seconds)
        notes += [note for note in tally["notes"] if note not in notes]
    lines = list(notes)
    for label in sorted(set(made) | set(clones)):
        makers = made.get(label, [])
        times = "once" if len(makers) == 1 else f"{len(makers)} times"
        by = ", ".join(f"{m['worker']} {m['seconds']:.2f} s" for m in makers)
        taken = clones.get(label, [])
        median = f", median {statistics.median(taken) * 1000:.0f} ms" if taken else ""
        lines.append(f"template {label}: made {times} ({by}); {len(taken)} clones{median}")
    return lines


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = summary_lines(config.stash.get(_TALLIES, []))
    if lines:
        terminalreporter.write_sep("-", "chatbench")
        for line in lines:
            terminalreporter.write_line(line)
