"""The application's own way of building the schema: a SQL file or a migration command.

``--schema-from FILE.sql`` runs a SQL file; ``--schema-from-cmd CMD`` runs a command (``alembic
upgrade head``) with the throwaway database's URL in its environment, through
``chatbench.external`` (bounded by ``--command-timeout``, output scrubbed of secrets). A password the
user gave by ``PGPASSWORD`` or ``~/.pgpass`` reaches the command unchanged. Drift then answers the
pre-release question: do the migrations produce the canonical schema? The rows come afterwards from
``chatbench.loadgen.transplant``.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from chatbench import external
from chatbench.errors import ConfigError, redact
from chatbench.provision import Server


def database_env(server: Server) -> dict[str, str]:
    """Environment for a migration command: the throwaway database's URL under the usual names.

    ``PGPASSWORD`` is set only when the URL carries a password; otherwise the caller's own
    ``PGPASSWORD`` (or ``~/.pgpass``) passes through untouched, as libpq would read it.
    """
    libpq_url = server.conninfo()
    env = {
        **os.environ,
        "DATABASE_URL": libpq_url,
        "CHATBENCH_DATABASE_URL": libpq_url,
        "CHATBENCH_SQLALCHEMY_URL": server.url.set(drivername="postgresql+psycopg").render_as_string(
            hide_password=False
        ),
        "PGHOST": str(server.url.host or ""),
        "PGPORT": str(server.url.port or ""),
        "PGUSER": str(server.url.username or ""),
        "PGDATABASE": server.database,
    }
    if server.url.password is not None:
        env["PGPASSWORD"] = str(server.url.password)
    return env


def build_from_sql(server: Server, path: Path) -> None:
    """Run the statements of ``path`` in the (empty) database of ``server``, in one transaction."""
    server.require_destructive(f"run {path}")
    if not path.is_file():
        raise ConfigError(f"--schema-from {path}: no such file; give the SQL file that builds the schema")
    try:
        with psycopg.connect(server.conninfo()) as conn:
            conn.execute(path.read_text().encode())  # bytes: no placeholders parsed; many statements
    except psycopg.Error as exc:
        raise ConfigError(f"--schema-from {path}: the SQL failed: {str(exc).splitlines()[0]}") from None


def build_from_cmd(server: Server, command: str, cwd: Path | None = None, *, timeout: float | None = None) -> None:
    """Run ``command`` (a shell command line) with the database URL in DATABASE_URL and friends."""
    argv = external.split_command(command, "--schema-from-cmd")  # bad quoting: one line, before any write
    server.require_destructive(f"run {command!r}")
    done = external.run(argv, what="--schema-from-cmd", env=database_env(server), cwd=cwd, timeout=timeout)
    if done.returncode != 0:
        raise ConfigError(f"--schema-from-cmd {redact(command)!r} exited {done.returncode}: {done.tail()}")
