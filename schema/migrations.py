"""The application's own way of building the schema: a SQL file or a migration command.

``--schema-from FILE.sql`` runs a SQL file; ``--schema-from-cmd CMD`` runs a command (``alembic
upgrade head``) with the throwaway database's URL in its environment, through
``chatbench.external`` (bounded by ``--command-timeout``, output scrubbed of secrets). A password the
user gave by ``PGPASSWORD`` or ``~/.pgpass`` reaches the command unchanged. Drift then answers the
pre-release question: do the migrations produce the canonical schema? The rows come afterwards from
the seeder, which fills the schema it finds (``loadgen.seed(..., prebuilt=True)``).
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


def build_from_sql(server: Server, path: Path, *, option: str = "--schema-from") -> None:
    """Run the statements of ``path`` in the (empty) database of ``server``, in one transaction.

    ``option`` names the setting in errors (``--schema-from``, or the rehearsal's ``--from``)."""
    server.require_destructive(f"run {path}")
    if not path.is_file():
        raise ConfigError(f"{option} {path}: no such file; give the SQL file that builds the schema")
    text = path.read_text()
    try:
        with psycopg.connect(server.conninfo()) as conn:
            conn.execute(text.encode())  # bytes: no placeholders parsed; many statements, one transaction
    except psycopg.Error as exc:
        # The server reports the position in the whole text: say which line, so a file that fails halfway
        # is fixed without bisecting it (nothing of it was kept: one transaction).
        position = exc.diag.statement_position
        where = f" at line {text[: int(position)].count(chr(10)) + 1}" if position and position.isdigit() else ""
        raise ConfigError(
            f"{option} {path}: the SQL failed{where} (nothing was kept): {str(exc).splitlines()[0]}"
        ) from None


def build_from_cmd(server: Server, command: str, cwd: Path | None = None, *, timeout: float | None = None,
                   option: str = "--schema-from-cmd") -> None:
    """Run ``command`` (a shell command line) with the database URL in DATABASE_URL and friends.

    ``option`` names the setting in errors (``--schema-from-cmd``, or the rehearsal's ``--from-cmd``)."""
    argv = external.split_command(command, option)  # bad quoting: one line, before any write
    server.require_destructive(f"run {command!r}")
    done = external.run(argv, what=option, env=database_env(server), cwd=cwd, timeout=timeout)
    if done.returncode != 0:
        raise ConfigError(f"{option} {redact(command)!r} exited {done.returncode}: {done.tail()}")
