"""What ``chatbench server`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.server``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse
import threading

from chatbench import schema
from chatbench.commands._common import out, require_writable, server_from
from chatbench.provision import Server
from chatbench.settings import Settings, where


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
