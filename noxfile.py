"""The sessions CI and people run. Each installs the project itself into its own virtualenv.

    nox -s fast           the edit loop: every test but the container, PG 15, packaging, crash and slow
                          ones (markers), three workers; about two minutes (`nox -R -s fast` skips the
                          reinstall once the virtualenv exists)
    nox -s tests          the whole test suite CI runs (real servers: embedded PG 18, Debian PG 15, Docker)
    nox -s lint           ruff + mypy
    nox -s signoff        the pre-release sign-off on the embedded default (the README's main job)
    nox -s bench          pytest-benchmark suite of the history queries vs targets (ci profile)
    nox -s compare -- CURRENT.json BASELINE.json
    nox -s bench_loadgen  loadgen throughput vs the raw COPY limit
    nox -s bench_provision  time from provision() to a ready connection
    nox -s fidelity       harness vs pgbench -M prepared, per query

Arguments after ``--`` are passed through to the underlying command.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "uv|virtualenv"
"""uv makes a session's virtualenv and installs into it in seconds where pip takes 15-25 (``nox[uv]``
installs it); without uv, nox falls back to virtualenv. A uv virtualenv has no pip: the ``dev`` extra
names the pip and setuptools the tests build chatbench's wheel with."""
PYTHON = "3.11"
ROOT = Path(__file__).resolve().parent
WORKFLOW_DOCS = ROOT / "docs" / "github-actions.md"
_WORKFLOW_BLOCK = re.compile(r"^```yaml\n# (?P<path>\.github/workflows/[\w.-]+\.ya?ml)\n(?P<body>.*?)^```", re.M | re.S)


def _install(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


TMPFS = Path("/dev/shm")


def _test_environment() -> dict[str, str]:
    """The test sessions' own environment on top of the caller's.

    They write Python's bytecode caches whatever the caller's environment says. The suite starts hundreds of
    fresh interpreters (the app-client launchers and load clients, the packaging and application-project
    venvs, the commands that cannot be forked), and a uv virtualenv is installed without bytecode: where
    ``PYTHONDONTWRITEBYTECODE`` is set (CI's image sets it), each of them compiled every module it imports from
    source, 3.7-4.9 s against 1.2-1.4 s for chatbench's CLI with a sign-off. Empty, the variable is unset for
    Python: the first import of a module writes its cache and every later process reads it.

    Their temporary files (pytest's ``tmp_path``, the wheel, the virtualenvs and pip's unpacking) go to tmpfs
    where the machine has one: on this kind of VM's ext4 root, creating a file costs about 0.5 ms against
    0.02 ms on tmpfs, and the suite creates tens of thousands (docs/design.md, The test suite).
    """
    environment = {"PYTHONDONTWRITEBYTECODE": ""}
    if TMPFS.is_dir() and os.access(TMPFS, os.W_OK):
        environment["TMPDIR"] = str(TMPFS)
    return environment


PYTEST_ENV = _test_environment()
FAST = "not (container or pg15 or packaging or crash or slow)"
"""The markers the edit loop leaves out (pyproject.toml declares them; CI runs them all)."""
WORKERS = ("-n", "2", "--dist", "loadgroup")
"""Two pytest-xdist workers for the whole suite (the machine's two cores: the whole suite is CPU-bound, and
four workers were barely faster, with timing-judged tests rerun); tests that must share a worker (one wheel
build, a module's expensive fixtures) carry an ``xdist_group`` marker."""
FAST_WORKERS = ("-n", "3", "--dist", "loadgroup")
"""Three workers for the fast tier: part of its time is waiting (lock timeouts, hanging commands stopped at
their timeout, concurrent writer processes), which a third worker fills; measured in docs/design.md."""


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    _install(session, "dev")
    # Whole rehearsals and sign-offs judge timings on two cores the other worker loads too: a test that fails
    # is run again (at most twice, the rerun shown in the log) before it counts; a real failure fails each time.
    # The slowest tests are listed at the end: the suite's time budget is spent where the log shows; so are the tests
    # that were rerun (``-raR``), by name, for a flaky test to be found from the log of the run that passed.
    session.run("pytest", "tests", *WORKERS, "--reruns", "2", "--reruns-delay", "1", "-raR", "--durations", "25",
                *session.posargs, env=PYTEST_ENV)


@nox.session(python=PYTHON)
def fast(session: nox.Session) -> None:
    _install(session, "dev")
    session.run("pytest", "tests", *FAST_WORKERS, "-m", FAST, *session.posargs, env=PYTEST_ENV)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the sources; mypy and the layering contract on the installed package; actionlint on the
    workflow docs/github-actions.md documents (taken from the page itself, with shellcheck on its scripts).

    The stage folders install as ``chatbench.schema`` etc. (package-dir mapping), a shape that exists
    only once installed: mypy and import-linter read the installed copy (non-editable, so it is also
    a check that the wheel is whole), run from a scratch directory so the checkout does not shadow it.
    mypy's paths are mapped back to the checkout.
    """
    session.install(".[dev]")
    session.run("ruff", "check", ".")
    config = str(ROOT / "pyproject.toml")
    scratch = session.create_tmp()
    with session.chdir(scratch):
        site = session.run("python", "-c", "import chatbench, pathlib; print(pathlib.Path(chatbench.__file__).parent)",
                           silent=True).strip()
        report = session.run("mypy", "--config-file", config, "-p", "chatbench", silent=True, success_codes=[0, 1])
        print(_source_paths(report or "", site))
        if report and not report.rstrip().splitlines()[-1].startswith("Success"):
            session.error("mypy found errors (above)")
        session.run("lint-imports", config)
        workflows = write_documented_workflows(Path(scratch), WORKFLOW_DOCS.read_text())
        if not workflows:
            session.error(f"{WORKFLOW_DOCS}: no ```yaml block starting with '# .github/workflows/NAME.yml'")
        session.run("actionlint", *map(str, workflows))


def write_documented_workflows(base: Path, markdown: str) -> list[Path]:
    """Every ```yaml block whose first line names a workflow file, written there under ``base``: what the
    page shows is exactly what actionlint checks."""
    written = []
    for block in _WORKFLOW_BLOCK.finditer(markdown):
        path = base / block.group("path")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {block.group('path')}\n{block.group('body')}")
        written.append(path)
    return written


def _source_paths(text: str, installed: str) -> str:
    """mypy output with installed-package paths replaced by the checkout's (package-dir mapping)."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items(), key=lambda item: -len(item[0])):
        prefix = str(Path(installed).parent / package.replace(".", "/")) + "/"
        text = text.replace(prefix, f"{folder}/")
    return text


@nox.session(python=PYTHON)
def signoff(session: nox.Session) -> None:
    _install(session)
    session.run("chatbench", "signoff", *(session.posargs or ["--backend", "local"]))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    _install(session)
    session.run("chatbench", "bench", *session.posargs)


@nox.session(python=PYTHON)
def compare(session: nox.Session) -> None:
    _install(session)
    session.run("chatbench", "compare", *session.posargs)


@nox.session(python=PYTHON)
def bench_loadgen(session: nox.Session) -> None:
    _install(session)
    session.run("python", "-m", "chatbench.loadgen.bench", *session.posargs)


@nox.session(python=PYTHON)
def bench_provision(session: nox.Session) -> None:
    _install(session)
    session.run("python", "-m", "chatbench.provision.bench", *session.posargs)


@nox.session(python=PYTHON)
def fidelity(session: nox.Session) -> None:
    _install(session)
    session.run("chatbench", "bench", "--fidelity", *session.posargs)
