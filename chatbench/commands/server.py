"""Start a throwaway PostgreSQL server, print its URL and keep it until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import threading

from chatbench import schema
from chatbench.commands._common import SERVER_SETTINGS, console, server_from
from chatbench.settings import Settings

NAME = "server"
HELP = "start a throwaway server and keep it until Ctrl-C"
SETTINGS = (*SERVER_SETTINGS, "apply_schema")


def run(settings: Settings, args: argparse.Namespace) -> int:
    with server_from(settings) as server:
        if settings.apply_schema:
            schema.apply(server.url)
        console.print(f"PostgreSQL {server.version} ({server.backend}) ready; Ctrl-C stops it and removes everything")
        # The URL goes to stdout so scripts can capture it; with a password only for container/dsn.
        print(server.url.render_as_string(hide_password=False), flush=True)
        threading.Event().wait()
    return 0
