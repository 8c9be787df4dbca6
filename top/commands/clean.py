"""Remove what crashed runs left behind: local clusters, containers, and (with --dsn) run databases.

Only what a dead run owned: each run holds a lock on its owner record for its whole life, so a
``clean`` beside live runs (in a loop, even) removes none of theirs.
"""

from __future__ import annotations

import argparse

from rich.text import Text

from chatbench.commands._common import out
from chatbench.errors import ProvisionError
from chatbench.provision import janitor
from chatbench.provision.dsn import check_reachable, parse_dsn
from chatbench.settings import Settings

NAME = "clean"
HELP = "remove leftover clusters, containers and (with --dsn) run databases of dead runs"
SETTINGS = ("dsn",)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.dsn is not None:
        check_reachable(parse_dsn(settings.dsn))  # a wrong password is one line, before anything is touched
    removed = janitor.clean_local() + janitor.clean_snapshot_partials()
    try:
        removed += janitor.clean_containers()
    except ProvisionError:
        out.note("containers: no Docker engine answers, nothing to check")
    if settings.dsn is not None:
        removed += janitor.clean_dsn(settings.dsn)
    removed += janitor.clean_records()
    for item in removed:
        status = Text("removed") if item.ok else Text.assemble(("failed", "red"), f" ({item.detail})")
        out.line(Text.assemble(f"{item.kind} {item.name}: ", status))
    if not removed:
        out.line("nothing to clean")
    return 0 if all(item.ok for item in removed) else 2
