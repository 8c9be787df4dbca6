"""Start a throwaway PostgreSQL server, print its URL and keep it until Ctrl-C or SIGTERM.

The URL goes to stdout alone, as the first line, in the plain ``postgresql://`` form that psql,
libpq and psycopg accept (``psql "$(head -1 server.url)"``); the status lines go to stderr. A
throwaway server's URL holds its password (local: none, trust on loopback; container: the
container's throwaway one). A ``--dsn`` server's never does: it is the one you gave, and the line on
stderr says where it came from.
"""

from __future__ import annotations

import argparse
import threading

from chatbench import schema
from chatbench.commands._common import SERVER_SETTINGS, out, require_writable, server_from
from chatbench.provision import Server
from chatbench.settings import Settings, where

NAME = "server"
HELP = "start a throwaway server, print its postgresql:// URL and keep the server until Ctrl-C"
SETTINGS = (*SERVER_SETTINGS, "apply_schema")


def printed_url(server: Server) -> str:
    """The plain libpq URL; without the password for a server chatbench did not start."""
    url = server.url.set(drivername="postgresql")
    if server.backend == "dsn":
        url = url._replace(password=None)  # (URL.set ignores None)
    return str(url.render_as_string(hide_password=False))


def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.apply_schema:
        require_writable(settings, "--apply-schema creates tables")
    with server_from(settings) as server:
        if settings.apply_schema:
            server.require_destructive("create the canonical schema")
            schema.apply(server.url)
        out.line(f"PostgreSQL {server.version} ({server.backend}) ready; Ctrl-C stops it and removes everything")
        if server.backend == "dsn" and server.url.password:
            out.line(f"the URL leaves the password out: it is the one in {where(settings, 'dsn')} "
                     "; give it to clients by PGPASSWORD or ~/.pgpass (psql asks for it otherwise)")
        print(printed_url(server), flush=True)
        threading.Event().wait()
    return 0
