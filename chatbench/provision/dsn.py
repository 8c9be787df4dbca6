"""The ``dsn`` backend: an existing server (staging, managed Postgres, a Citus coordinator).

The harness creates a uniquely named database for the run and drops it afterwards. The database
comment records the owner (``chatbench.provision.owner.OwnerTag``: host, pid, the run's locked owner
record) so ``chatbench clean --dsn`` can drop leftovers of crashed runs, and nothing else. Destructive
work in the DSN's own database needs ``allow_destructive``. The password is registered as a secret
the moment the DSN is parsed, so no output can carry it in any encoding.
"""

from __future__ import annotations

import json

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from chatbench.errors import ConfigError, ProvisionError, redact, register_secret
from chatbench.provision.owner import TAG_MARKER, current_tag

RUN_DATABASE_PREFIX = "chatbench_run_"
COMMENT_MARKER = TAG_MARKER


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
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
