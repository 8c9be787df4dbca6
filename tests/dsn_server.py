"""A "someone else's" server for DSN tests: a local throwaway server with real password authentication.

The role ``cbuser`` logs in over TCP with SCRAM and a password made of the characters that break
naive escaping (``<&>"'%@:/``), so a test can look for it, in every encoding, in everything chatbench
printed or wrote.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import psycopg
from psycopg import sql

from chatbench.provision import Server, provision

PASSWORD = "<&>\"'%@:/"
USER = "cbuser"


@dataclass(frozen=True)
class DsnServer:
    admin: Server  # the throwaway server itself (trust for its own superuser)
    dsn: str  # postgresql://cbuser:<password, URL-encoded>@127.0.0.1:PORT/postgres
    wrong_dsn: str  # the same with a wrong password

    def databases(self) -> set[str]:
        with psycopg.connect(self.admin.admin_conninfo(), autocommit=True) as conn:
            return {str(r[0]) for r in conn.execute("SELECT datname FROM pg_database")}


def password_forms(password: str = PASSWORD) -> dict[str, str]:
    """Every spelling of the password an output could carry."""
    return {
        "raw": password,
        "url": quote(password, safe=""),
        "url-lower": quote(password, safe="").lower(),
        "url-plus": quote_plus(password),
        "html": html.escape(password, quote=True),
        "xml": password.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        .replace("'", "&apos;"),
        "json": json.dumps(password)[1:-1],
        "json-ascii-html": json.dumps(html.escape(password))[1:-1],
    }


@contextlib.contextmanager
def password_server() -> Iterator[DsnServer]:
    with provision("local", announce=lambda _m: None) as server:
        assert server.cluster is not None
        hba = server.cluster.data / "pg_hba.conf"
        hba.write_text(f"host all {USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(USER), sql.Literal(PASSWORD)))
            conn.execute("SELECT pg_reload_conf()")
        port = server.url.port
        dsn = f"postgresql://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/postgres"
        wrong = f"postgresql://{USER}:{quote('not-' + PASSWORD, safe='')}@127.0.0.1:{port}/postgres"
        with psycopg.connect(f"host=127.0.0.1 port={port} user={USER} dbname=postgres", password=PASSWORD) as conn:
            conn.execute("SELECT 1")  # the password works, over TCP, with SCRAM
        yield DsnServer(server, dsn, wrong)
