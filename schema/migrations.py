"""The application's own way of building the schema: a SQL file or a migration command.

``--schema-from FILE.sql`` runs a SQL file; ``--schema-from-cmd CMD`` runs a command (``alembic
upgrade head``) with the throwaway database's URL in its environment. Drift then answers the
pre-release question: do the migrations produce the canonical schema? The rows come afterwards from
``chatbench.loadgen.transplant``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import psycopg

from chatbench.errors import ConfigError, redact
from chatbench.provision import Server


def database_env(server: Server) -> dict[str, str]:
    """Environment for a migration command: the throwaway database's URL under the usual names."""
    libpq_url = server.conninfo()
    return {
        **os.environ,
        "DATABASE_URL": libpq_url,
        "CHATBENCH_DATABASE_URL": libpq_url,
        "CHATBENCH_SQLALCHEMY_URL": server.url.set(drivername="postgresql+psycopg").render_as_string(
            hide_password=False
        ),
        "PGHOST": str(server.url.host or ""),
        "PGPORT": str(server.url.port or ""),
        "PGUSER": str(server.url.username or ""),
        "PGPASSWORD": str(server.url.password or ""),
        "PGDATABASE": server.database,
    }


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


def build_from_cmd(server: Server, command: str, cwd: Path | None = None, *, timeout: float = 600.0,
                   option: str = "--schema-from-cmd") -> None:
    """Run ``command`` (a shell command line) with the database URL in DATABASE_URL and friends."""
    server.require_destructive(f"run {command!r}")
    try:
        done = subprocess.run(shlex.split(command), env=database_env(server), cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"{option} {command!r} ran longer than {timeout:g} s; raise --command-timeout or fix the command"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{option} {command!r}: cannot run it ({exc.strerror}); check the program") from None
    if done.returncode != 0:
        tail = redact(" | ".join((done.stderr or done.stdout).strip().splitlines()[-3:]))
        raise ConfigError(f"{option} {command!r} exited {done.returncode}: {tail}")


