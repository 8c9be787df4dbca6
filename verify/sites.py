"""Where the behaviour probes run: always on a schema-only copy, never among real rows.

The probes write (inserts, updates, deletes, all rolled back), and even a rolled-back insert leaves a
trace: it steps a sequence, counts in ``pg_stat_database``, and clears the all-visible bit of the heap
page it landed on. Measured on a seeded ``ci`` database: probes run in place changed the shared
buffers of 20 plan scenarios by 1 to 3 (index-only scans of a whale must then visit a heap page),
and a VACUUM afterwards did not restore them all. The plan contracts are judged on those very buffers,
so the probes run on a copy of the schema alone (``pg_dump --schema-only`` restored with
``pg_restore`` into a fresh database), which no other check reads:

* the harness built the database (a throwaway server, or a run database chatbench created): the copy
  is a scratch database on the same server, made with that server's own binaries when it is local;
* ``--url`` (read-only, a database chatbench does not own): nothing at all is written to that server,
  not even a scratch database. ``pg_dump`` reads the catalog in one read-only snapshot, and the copy is
  restored on a throwaway local server.

Versions: ``pg_dump`` must be at least the dumped server's major version, and its output is meant for a
server of its own version or newer; so a local host server dumps and restores with its own binaries,
any other server is dumped with the embedded PostgreSQL's (18), and a server newer than the binaries
at hand is refused up front with the remedy (``--pg-bin``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

from chatbench.errors import ChatbenchError, redact
from chatbench.provision import Server, provision
from chatbench.provision.binaries import PgBinaries, resolve_binaries
from chatbench.provision.databases import temporary_database

DUMP_TIMEOUT_S = 300

# Extensions the copy never carries: plpgsql is in every database already, and Citus's own
# extensions would make a throwaway single server a coordinator (the copy needs the schema, not the
# cluster).
_EXTENSIONS_NOT_COPIED = ("plpgsql", "citus", "citus_columnar")


class LocalScratch:
    """A throwaway local server started on first use and stopped with the verification's exit stack."""

    def __init__(self, stack: contextlib.ExitStack, pg_bin: str | Path | None = None) -> None:
        self._stack = stack
        self._pg_bin = pg_bin
        self._server: Server | None = None

    def server(self) -> Server:
        if self._server is None:
            self._server = self._stack.enter_context(provision("local", pg_bin=self._pg_bin, announce=_quiet))
        return self._server


def _quiet(message: str) -> None:
    del message


@dataclass(frozen=True)
class SchemaCopy:
    """A database holding the live schema (no rows), on a server this run owns."""

    server: Server
    description: str
    restore_errors: tuple[str, ...]


def _client_env(server: Server) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and an environment carrying it (never on a command line)."""
    url = server.url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = {**os.environ, "PGAPPNAME": "chatbench-verify"}
    if server.url.password:
        env["PGPASSWORD"] = str(server.url.password)
    return url, env


def client_binaries(host: Server) -> PgBinaries:
    """The client tools to dump and restore with: the host's own when it is a local server, else embedded."""
    if host.cluster is not None:
        return host.cluster.binaries
    return resolve_binaries(None)


def _last_lines(text: str, count: int = 2) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return redact(" | ".join(lines[-count:]))


def schema_extensions(live: Server) -> tuple[str, ...]:
    """The extensions installed in the live database, to dump with the schema.

    Why: ``pg_dump --schema=public`` leaves extensions out, so a column typed by one (``citext``,
    ``vector``, ``hstore``) failed to restore and took its table, and every probe on it, with it.
    """
    with psycopg.connect(live.conninfo(), autocommit=True, application_name="chatbench-verify",
                         options="-c default_transaction_read_only=on") as conn:
        rows = conn.execute(
            "SELECT extname FROM pg_extension WHERE extname <> ALL(%s) ORDER BY extname",
            (list(_EXTENSIONS_NOT_COPIED),),
        ).fetchall()
    return tuple(str(name) for (name,) in rows)


def dump_schema(live: Server, tools: PgBinaries, schema: str) -> bytes:
    """``pg_dump --schema-only`` of ``schema`` and the extensions it may use, custom format (read-only
    on the live side). An extension the copy's server lacks is one ``copy_incomplete`` line, not a crash."""
    live_major = live.version_num // 10000
    if live_major > tools.major:
        raise ChatbenchError(
            f"the server is PostgreSQL {live.version} and pg_dump here is {tools.version}; "
            f"to copy the schema for the behaviour probes pg_dump must be at least the server's version: "
            f"give --pg-bin with PostgreSQL {live_major}+ binaries"
        )
    url, env = _client_env(live)
    # pg_dump reads in one REPEATABLE READ, READ ONLY snapshot already; the option makes the server refuse
    # any write on that session as well.
    env["PGOPTIONS"] = "-c default_transaction_read_only=on"
    command = [
        tools.tool("pg_dump"),
        "--schema-only",
        "--format=custom",
        f"--schema={schema}",
        *(f"--extension={name}" for name in schema_extensions(live)),
        "--no-owner",
        "--no-privileges",
        "--no-publications",
        "--no-subscriptions",
        "--no-security-labels",
        "--no-tablespaces",
        "--dbname",
        url,
    ]
    try:
        done = subprocess.run(command, env=env, capture_output=True, timeout=DUMP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ChatbenchError(f"pg_dump --schema-only (the behaviour probes' copy) did not finish: {exc}") from None
    if done.returncode != 0:
        raise ChatbenchError(
            "pg_dump --schema-only (the behaviour probes' copy) failed: "
            f"{_last_lines(done.stderr.decode(errors='replace'))}; the role needs to read the schema's catalog "
            "and to lock its tables in ACCESS SHARE mode (SELECT privilege)"
        )
    return done.stdout


def restore_schema(dump: bytes, target: Server, tools: PgBinaries) -> tuple[str, ...]:
    """Restore a schema-only dump into ``target``; the errors pg_restore skipped past, one line each."""
    url, env = _client_env(target)
    # --clean --if-exists: the dump creates the schema (public too), which a new database already has.
    command = [tools.tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--dbname", url]
    try:
        done = subprocess.run(command, input=dump, env=env, capture_output=True, timeout=DUMP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ChatbenchError(f"restoring the schema-only copy did not finish: {exc}") from None
    errors = tuple(
        redact(" ".join(line.split()))
        for line in done.stderr.decode(errors="replace").splitlines()
        if line.startswith("pg_restore: error:")
    )
    if done.returncode != 0 and not errors:
        raise ChatbenchError(f"pg_restore of the schema-only copy failed: {_last_lines(done.stderr.decode())}")
    return errors


def schema_only_copy(live: Server, host: Server, stack: contextlib.ExitStack, schema: str = "public") -> SchemaCopy:
    """The live schema restored into a temporary database on ``host`` (dropped with ``stack``)."""
    tools = client_binaries(host)
    # pg_dump (a process reading the live catalog) and CREATE DATABASE (the host copying template0)
    # wait on different servers' work: run them side by side (about 20 ms of a ~100 ms copy).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatbench-pg-dump") as pool:
        dumping = pool.submit(dump_schema, live, tools, schema)
        copy = stack.enter_context(temporary_database(host, "cbv_probe", template="template0"))
        dump = dumping.result()
    errors = restore_schema(dump, copy, tools)
    if host is live or host.url.render_as_string() == live.url.set(database=host.database).render_as_string():
        where = f"the same server ({host.version}); the seeded rows are never touched"
    else:
        where = f"a throwaway local PostgreSQL {host.version}; nothing was written to the live server"
    description = f"a schema-only copy of the database (pg_dump {tools.version} --schema-only, pg_restore) on {where}"
    return SchemaCopy(copy, description, errors)
