"""Start a throwaway PostgreSQL server, print its URL and keep it until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import threading

from chatbench import schema
from chatbench.commands._common import console, server_from

NAME = "server"
HELP = "start a throwaway server and keep it until Ctrl-C"
USES_SERVER = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apply-schema", action="store_true", help="create the canonical schema in its database")


def run(args: argparse.Namespace) -> int:
    with server_from(args) as server:
        if args.apply_schema:
            schema.apply(server.url)
        console.print(f"PostgreSQL {server.version} ({server.backend}) ready; Ctrl-C stops it and removes everything")
        # The URL goes to stdout so scripts can capture it; with a password only for container/dsn.
        print(server.url.render_as_string(hide_password=False), flush=True)
        threading.Event().wait()
    return 0
