"""Start a throwaway PostgreSQL server, print its URL and keep it until Ctrl-C or SIGTERM.

The URL goes to stdout so a script can capture it. It carries a password only when chatbench made
that password (the container backend's throwaway one); for ``--backend dsn`` the password is the
user's, so the URL is printed without it and stderr says where a client takes it from.
"""

from __future__ import annotations

import argparse
import threading

from chatbench import schema
from chatbench.commands._common import SERVER_SETTINGS, console, require_writable, server_from
from chatbench.settings import Settings

NAME = "server"
HELP = "start a throwaway server and keep it until Ctrl-C"
SETTINGS = (*SERVER_SETTINGS, "apply_schema")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.apply_schema:
        require_writable(settings, "--apply-schema creates tables")
    with server_from(settings) as server:
        if settings.apply_schema:
            server.require_destructive("create the canonical schema")
            schema.apply(server.url)
        console.print(f"PostgreSQL {server.version} ({server.backend}) ready; Ctrl-C stops it and removes everything")
        if server.backend == "dsn":
            url = server.url._replace(password=None)  # URL.set() ignores None
            if server.url.password is not None:
                console.print("[dim]the password is the one in --dsn (not printed); give it to clients by "
                              "PGPASSWORD or ~/.pgpass[/dim]")
        else:
            url = server.url
        print(url.render_as_string(hide_password=False), flush=True)
        threading.Event().wait()
    return 0
