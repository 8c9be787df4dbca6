"""The sessions CI and people run. Each installs the project itself into its own virtualenv.

    nox -s tests          the whole test suite (real servers: embedded PG 18, Debian PG 15, Docker)
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

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = "3.11"


def _install(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    _install(session)
    session.run("pytest", "tests", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    _install(session, "dev")
    session.run("ruff", "check", ".")
    session.run("mypy")


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
    session.run("python", "-m", "loadgen.bench", *session.posargs)


@nox.session(python=PYTHON)
def bench_provision(session: nox.Session) -> None:
    _install(session)
    session.run("python", "-m", "chatbench.provision.bench", *session.posargs)


@nox.session(python=PYTHON)
def fidelity(session: nox.Session) -> None:
    _install(session)
    session.run("chatbench", "bench", "--fidelity", *session.posargs)
