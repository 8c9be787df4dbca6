"""The ``dsn`` backend: an existing server (staging, managed Postgres, a Citus coordinator).

The harness creates a uniquely named database for the run and drops it afterwards. The database
comment records the owner (``chatbench.provision.owner.OwnerTag``: host, pid, the run's locked owner
record) so ``chatbench clean --dsn`` can drop leftovers of crashed runs, and nothing else. Destructive
work in the DSN's own database needs ``allow_destructive``. The password is registered as a secret
the moment the DSN is parsed, so no output can carry it in any encoding.

A Citus coordinator is recognised by what its own database holds, read only: the ``citus`` extension and
active workers (``find_citus_coordinator``). Citus metadata is per database, and Citus 14 (the pinned
14.0.1) creates a new database on the coordinator alone: ``citus.enable_create_database_propagation`` (a
per-session setting, off by default) would send CREATE/DROP DATABASE to the workers, but it records the
database as a distributed object in the creating session's database (a row of ``pg_dist_object`` in the
DSN's database) and needs the coordinator in its own metadata; and ``CREATE EXTENSION citus`` in the new
database reaches no worker (its metadata is empty), while a worker whose copy lacks the extension cannot be
added. So chatbench has the coordinator run its statements on each worker (``master_run_on_worker``: the
coordinator's own connections, as the DSN's user, in the calling session's database). The run database is
made as on any server; the sign-off's distribution step (``enable_run_database``) creates it on every worker
from a read-only session of the DSN's database, installs ``citus`` in every copy and registers the workers in
it; ``drop_database`` drops every copy. Nothing is written to the DSN's own database, and chatbench needs no
route to the workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from chatbench.errors import ConfigError, ProvisionError, redact, register_secret
from chatbench.provision.owner import TAG_MARKER, current_tag

RUN_DATABASE_PREFIX = "chatbench_run_"
COMMENT_MARKER = TAG_MARKER
READ_ONLY = "-c default_transaction_read_only=on"


def parse_dsn(dsn: str, field: str = "--dsn") -> URL:
    try:
        url = make_url(dsn)
    except ArgumentError:
        raise ConfigError(
            f"{field} {redact(dsn)!r} is not a database URL; use postgresql://user@host:5432/dbname "
            "(password in the URL, PGPASSWORD or ~/.pgpass)"
        ) from None
    register_secret(url.password)
    if not url.drivername.startswith("postgresql"):
        raise ConfigError(f"{field}: {url.drivername!r} is not PostgreSQL; use a postgresql:// URL")
    return url.set(drivername="postgresql+psycopg", database=url.database or "postgres")


def libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def check_reachable(url: URL, timeout: int = 5, field: str = "--dsn") -> None:
    """Connect once; turn libpq's failure into a one-line error naming the fix (no password)."""
    try:
        with psycopg.connect(libpq(url), connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        message = str(exc)
        if "password authentication failed" in message or "authentication failed" in message:
            hint = f"check the user name and password in {field}"
        elif "does not exist" in message:
            hint = f"check the database name in {field}"
        else:
            hint = f"check host and port in {field} and that the server accepts connections"
        reason = redact(" ".join(message.split()) or type(exc).__name__)[:240]
        raise ProvisionError(
            f"{field} {url.render_as_string(hide_password=True)}: cannot connect ({reason}); {hint}"
        ) from None


@dataclass(frozen=True)
class CitusCoordinator:
    """A ``--dsn`` server that is a Citus coordinator, as its own database describes it."""

    citus_version: str
    version_num: int  # the server's PostgreSQL (server_version_num)
    node: tuple[str, int] | None  # the coordinator as its metadata names it (group 0); None: not registered
    workers: tuple[tuple[str, int], ...]  # the active workers, as the coordinator reaches them
    superuser: bool = False  # the DSN's user is one on the coordinator

    @property
    def major(self) -> int:
        return self.version_num // 10000


def find_citus_coordinator(url: URL) -> CitusCoordinator | None:
    """The Citus coordinator behind ``url``: its database has the ``citus`` extension and active workers.

    None for any other server (a coordinator without workers is one server), and when the server cannot be
    read now (provisioning then says why). Read only, in a read-only session of the DSN's database."""
    try:
        with psycopg.connect(libpq(url), autocommit=True, connect_timeout=5, options=READ_ONLY) as conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()
            if row is None:
                return None
            version = conn.execute("SELECT current_setting('server_version_num')::int, "
                                   "current_setting('is_superuser') = 'on'").fetchone()
            workers = tuple((str(host), int(port)) for host, port in conn.execute(
                "SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY 1, 2"))
            node = conn.execute("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 0 "
                                "AND noderole = 'primary' AND isactive").fetchone()
    except psycopg.Error:
        return None
    if not workers or version is None:
        return None
    return CitusCoordinator(str(row[0]), int(version[0]), (str(node[0]), int(node[1])) if node else None, workers,
                            bool(version[1]))


def on_workers(conninfo: str, found: CitusCoordinator, command: str) -> list[tuple[str, int, bool, str]]:
    """``command`` on every worker, in the database ``conninfo`` names, as its user, over the coordinator's own
    connections (``master_run_on_worker``; one statement, outside a transaction block, so CREATE DATABASE
    runs). Each worker's (host, port, succeeded, result or error). The calling session is read only."""
    hosts, ports = [h for h, _ in found.workers], [p for _, p in found.workers]
    with psycopg.connect(conninfo, autocommit=True, options=READ_ONLY) as conn:
        rows = conn.execute("SELECT node_name, node_port, success, result FROM master_run_on_worker("
                            "%s::text[], %s::int[], %s::text[], true)", (hosts, ports, [command] * len(hosts)))
        return [(str(h), int(p), bool(ok), str(result)) for h, p, ok, result in rows]


def _failed(results: list[tuple[str, int, bool, str]]) -> tuple[str, int, str] | None:
    return next(((h, p, " ".join(r.split())[:200]) for h, p, ok, r in results if not ok), None)


def check_citus_coordinator(url: URL, field: str = "--dsn") -> CitusCoordinator | None:
    """``find_citus_coordinator``, and whether a database chatbench creates there can be distributed: the DSN's
    user is a superuser on every node (``CREATE EXTENSION citus`` and ``citus_add_node`` are superuser-only) and
    the coordinator reaches every worker as that user (chatbench's database is made on every node through it).
    One line naming what to set otherwise (exit 2), before anything is created. Read only (a ``SELECT`` on
    each node)."""
    found = find_citus_coordinator(url)
    if found is None:
        return None
    shown = url.set(drivername="postgresql").render_as_string(hide_password=True)
    user = url.username or "the DSN's user"
    alone = (f"or pass --use-dsn-database --allow-destructive to distribute in {url.database}, where Citus is set "
             "up, or --backend citus for a local cluster")
    if not found.superuser:
        raise ConfigError(
            f"{field} {shown}: {user} is not a superuser on the Citus coordinator, and a database chatbench creates "
            f"there needs CREATE EXTENSION citus and its workers added (superuser only): connect as one, {alone}")
    results = on_workers(libpq(url), found, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    failed = _failed(results)
    if failed is not None:
        host, port, why = failed
        raise ConfigError(
            f"{field} {shown}: the Citus coordinator cannot reach worker {host}:{port} as {user} ({redact(why)}); "
            "chatbench makes its database on every node through the coordinator: let that user connect from the "
            f"coordinator to the workers (their pg_hba.conf, pg_dist_authinfo), {alone}")
    refused = [f"{h}:{p}" for h, p, _ok, result in results if result != "t"]
    if refused:
        raise ConfigError(
            f"{field} {shown}: {user} is not a superuser on Citus worker {', '.join(refused)}, where chatbench's "
            f"database needs CREATE EXTENSION citus: ALTER ROLE {user} SUPERUSER there, {alone}")
    return found


def enable_run_database(admin_url: URL, server_url: URL, found: CitusCoordinator) -> None:
    """Make chatbench's database (``server_url``) on a ``--dsn`` coordinator distributed: created on every
    worker (from a read-only session of the DSN's database, ``admin_url``), ``citus`` installed in each node's
    copy, the coordinator (when the DSN's database names it) and the workers registered in it as in the DSN's
    database. Writes only to chatbench's database, on each node; ``drop_database`` removes every copy."""
    database = str(server_url.database)
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)).as_string()
    failed = _failed(on_workers(libpq(admin_url), found, create))
    if failed is None:
        with psycopg.connect(libpq(server_url), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        failed = _failed(on_workers(libpq(server_url), found, "CREATE EXTENSION IF NOT EXISTS citus"))
    if failed is not None:
        raise ProvisionError(f"--dsn: cannot make {database} on Citus worker {failed[0]}:{failed[1]} "
                             f"({redact(failed[2])}); the DSN's user needs to be a superuser there")
    with psycopg.connect(libpq(server_url), autocommit=True) as conn:
        if found.node is not None:
            conn.execute("SELECT citus_set_coordinator_host(%s, %s)", found.node)
        for host, port in found.workers:
            conn.execute("SELECT citus_add_node(%s, %s)", (host, port))


def create_run_database(url: URL, run_id: str) -> str:
    name = f"{RUN_DATABASE_PREFIX}{run_id}"
    comment = json.dumps(current_tag(run_id).to_json())
    try:
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))
    except psycopg.Error as exc:
        raise ProvisionError(
            f"--dsn: cannot create the run database {name} ({redact(str(exc).strip().splitlines()[0])}); "
            "the DSN's user needs CREATEDB, or pass --use-dsn-database to run in the DSN's database"
        ) from None
    return name


def drop_database(url: URL, name: str) -> None:
    """Drop ``name``; on a Citus coordinator on every worker too, where ``enable_run_database`` may have made it
    (only a superuser's run can have: another's leaves the workers alone)."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    cluster = find_citus_coordinator(url)
    if cluster is not None and cluster.superuser:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)).as_string()
        failed = _failed(on_workers(libpq(url), cluster, drop))
        if failed is not None:
            raise ProvisionError(f"--dsn: cannot drop {name} on Citus worker {failed[0]}:{failed[1]} "
                                 f"({redact(failed[2])}); drop it there by hand")
